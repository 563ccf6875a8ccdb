/* runtime.h: the chip's life: boot, answer the host, load the committed shard, run inference. */
#ifndef RUNTIME_RUNTIME_H
#define RUNTIME_RUNTIME_H

#include <stdint.h>

#define RT_FW_VERSION "orch-fw 0.1.0"
#define RT_WRITE_WINDOW 8u /* WRITE frames the host may keep in flight */
#define RT_ACK_BATCH_BYTES 1024u /* ACKs held back until the end of a poll */

/* Boots the runtime: reads the commit records and loads the active shard if there is one.
 * Call once after the HAL is up. */
void runtime_init(void);
/* Serves the host link: reads what arrived within timeout_ms and answers every complete frame.
 * Returns <0 if the host link failed. */
int runtime_poll(uint32_t timeout_ms);

#endif
