"""From a float model to the int8 model: calibration of static activation scales, per-channel weights.

The result (QuantModel) holds whole, unpartitioned int8 tensors and every fixed-point parameter the
integer spec needs; orchestrator.partition slices it per chip. docs/int8-spec.md documents each scale.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from orchestrator.errors import InputError
from orchestrator.quant import spec

CALIB_SEED = 1234


@dataclass
class QLinear:
    """int8 weight [out, in] with per-output-row requantization to the consumer's scale."""

    w: np.ndarray  # int8 (out, in)
    scale: np.ndarray  # float64 (out,) weight scale per row (kept for reports, not used on chip)
    mult: np.ndarray  # int32 (out,)
    shift: np.ndarray  # int8 (out,)

    @property
    def rq(self) -> np.ndarray:
        """(out, 2) int32: multiplier and shift per row, the layout the shard stores."""
        return np.stack([self.mult.astype(np.int32), self.shift.astype(np.int32)], axis=1)


@dataclass
class QLayer:
    att_norm: np.ndarray  # int32 (D,) gain in Q16 relative to the output scale
    wq: QLinear
    wk: QLinear
    wv: QLinear
    wo: QLinear  # requantizes into the residual scale
    ffn_norm: np.ndarray
    w1: QLinear
    w3: QLinear
    w2: QLinear
    silu: np.ndarray  # int32 (256,)
    soft_mult: int
    soft_shift: int
    o_mult: int
    o_shift: int
    g_mult: int
    g_shift: int

    def params(self) -> np.ndarray:
        return np.array([self.soft_mult, self.soft_shift, self.o_mult, self.o_shift, self.g_mult, self.g_shift],
                        dtype=np.int32)


@dataclass
class QuantModel:
    config: object  # ModelConfig
    source_hash: str  # content hash of the float model
    layers: list[QLayer]
    embed: np.ndarray  # int8 (V, D)
    embed_mult: np.ndarray  # int32 (V,), to the residual scale
    embed_shift: np.ndarray
    cls: np.ndarray  # int8 (V, D): the same array object as embed when the classifier is tied
    cls_mult: np.ndarray  # to the logit scale
    cls_shift: np.ndarray
    final_norm: np.ndarray  # int32 (D,)
    eps_q: int
    temp_mult: int  # s_logit * log2(e) * 2^16, the base of temperature sampling
    temp_shift: int
    rope_steps: np.ndarray  # uint32 (hs/2,)
    sin_table: np.ndarray
    exp2_table: np.ndarray
    scales: dict = field(default_factory=dict)  # every float scale, for docs and reports
    calibration: dict = field(default_factory=dict)

    @property
    def shared_classifier(self) -> bool:
        return self.cls is self.embed

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(self.source_hash.encode())
        for arr in self.iter_arrays():
            h.update(np.ascontiguousarray(arr).data)
        return h.hexdigest()

    def iter_arrays(self):
        yield self.embed
        yield self.embed_mult
        yield self.cls_mult
        yield self.final_norm
        for lyr in self.layers:
            for lin in (lyr.wq, lyr.wk, lyr.wv, lyr.wo, lyr.w1, lyr.w3, lyr.w2):
                yield lin.w
                yield lin.rq
            yield lyr.att_norm
            yield lyr.ffn_norm
            yield lyr.silu
            yield lyr.params()
        if not self.shared_classifier:
            yield self.cls


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: scale = max|row| / 127 (an all-zero row gets scale 1/127)."""
    amax = np.abs(w).max(axis=1).astype(np.float64)
    amax[amax == 0] = 1.0
    scale = amax / spec.Q_MAX
    q = np.clip(np.rint(w / scale[:, None].astype(np.float32)), -spec.Q_MAX, spec.Q_MAX).astype(np.int8)
    return q, scale


def _qlinear(w: np.ndarray, in_scale: float, out_scale: float) -> QLinear:
    q, scale = quantize_rows(w)
    mult, shift = spec.quantize_multipliers(scale * in_scale / out_scale)
    return QLinear(q, scale, mult, shift)


def _gain_q16(g: np.ndarray, s_out: float) -> np.ndarray:
    v = np.rint(g.astype(np.float64) / s_out * (1 << spec.RMS_GAIN_SHIFT))
    if np.any(np.abs(v) >= 2 ** 31):
        raise InputError("an RMSNorm weight is too large for the int8 spec's Q16 gain; the checkpoint looks corrupt")
    return v.astype(np.int32)


# --- calibration --------------------------------------------------------------------------------

class RangeObserver:
    """Records max |value| per (site, layer), and the max RoPE pair norm for q and k."""

    def __init__(self):
        self.amax: dict[tuple[str, int], float] = {}

    def __call__(self, site: str, layer: int, arr: np.ndarray) -> None:
        if site in ("q_rope", "k_rope"):
            pairs = np.asarray(arr, dtype=np.float64).reshape(-1, 2)
            m = float(np.sqrt((pairs ** 2).sum(axis=1)).max())
        else:
            m = float(np.abs(arr).max())
        key = (site, layer)
        if m > self.amax.get(key, 0.0):
            self.amax[key] = m

    def get(self, site: str, layer: int = -1) -> float:
        v = self.amax.get((site, layer), 0.0)
        return v if v > 0 else 1e-6


def calibration_sequences(model, n_sequences: int, length: int) -> list[list[int]]:
    """Token ids the calibration runs: the first is BOS then greedy; the rest start from seeded prompts.

    Greedy continuation means the activations seen are those the model itself produces.
    """
    rng = np.random.default_rng(CALIB_SEED)
    seqs = [[1]]
    for _ in range(n_sequences - 1):
        seqs.append([1] + rng.integers(3, model.config.vocab_size, size=4).tolist())
    return seqs


def calibrate(model, n_sequences: int = 3, length: int = 16) -> tuple[RangeObserver, dict]:
    from orchestrator.model.reference import FloatTransformer

    obs = RangeObserver()
    ft = FloatTransformer(model)
    length = min(length, model.config.seq_len)
    n_tokens = 0
    for prompt in calibration_sequences(model, n_sequences, length):
        ft.reset()
        token = prompt[0]
        for pos in range(length):
            logits = ft.forward(token, pos, observer=obs)
            n_tokens += 1
            token = prompt[pos + 1] if pos + 1 < len(prompt) else int(np.argmax(logits))
    info = {"sequences": n_sequences, "tokens_per_sequence": length, "tokens": n_tokens,
            "method": "max |activation| over the float model's own greedy continuations of BOS and of "
                      f"{n_sequences - 1} seeded random 4-token prompts (seed {CALIB_SEED})"}
    return obs, info


# --- the quantizer ------------------------------------------------------------------------------

def quantize_model(model, n_sequences: int = 3, length: int = 16) -> QuantModel:
    cfg = model.config
    wts = model.weights
    obs, info = calibrate(model, n_sequences, length)

    res_amax = max(obs.get("emb"), *(obs.get(s, l) for l in range(cfg.n_layers) for s in ("x_mid", "x_out")))
    s_res = res_amax / (1 << 16)  # 256x headroom below RES_MAX
    eps_q = max(1, int(round(cfg.norm_eps / (s_res * s_res))))
    if eps_q >= 2 ** 31:
        raise InputError("the model's activations are too small for the int8 spec's residual scale")
    hs = cfg.head_size
    scales = {"residual": s_res}

    layers = []
    for l in range(cfg.n_layers):
        s_xa = obs.get("xn_att", l) / spec.Q_MAX
        s_q = obs.get("q_rope", l) / spec.Q_MAX
        s_k = obs.get("k_rope", l) / spec.Q_MAX
        s_v = obs.get("v", l) / spec.Q_MAX
        s_o = obs.get("att_out", l) / spec.Q_MAX
        s_xf = obs.get("xn_ffn", l) / spec.Q_MAX
        s_h1 = obs.get("h1", l) / spec.Q_MAX
        s_h3 = obs.get("h3", l) / spec.Q_MAX
        s_g = obs.get("g", l) / spec.Q_MAX
        x = np.arange(-128, 128, dtype=np.float64) * s_h1
        s_silu = float(np.abs(x / (1.0 + np.exp(-x))).max()) / 32767.0
        soft_mult, soft_shift = spec.quantize_multiplier(s_q * s_k / math.sqrt(hs) * math.log2(math.e) * 65536.0)
        o_mult, o_shift = spec.quantize_multiplier(s_v / (1 << spec.PROB_SHIFT) / s_o)
        g_mult, g_shift = spec.quantize_multiplier(s_silu * s_h3 / s_g)
        layers.append(QLayer(
            att_norm=_gain_q16(wts.rms_att[l], s_xa),
            wq=_qlinear(wts.wq[l], s_xa, s_q),
            wk=_qlinear(wts.wk[l], s_xa, s_k),
            wv=_qlinear(wts.wv[l], s_xa, s_v),
            wo=_qlinear(wts.wo[l], s_o, s_res),
            ffn_norm=_gain_q16(wts.rms_ffn[l], s_xf),
            w1=_qlinear(wts.w1[l], s_xf, s_h1),
            w3=_qlinear(wts.w3[l], s_xf, s_h3),
            w2=_qlinear(wts.w2[l], s_g, s_res),
            silu=spec.silu_table(s_h1, s_silu),
            soft_mult=soft_mult, soft_shift=soft_shift, o_mult=o_mult, o_shift=o_shift,
            g_mult=g_mult, g_shift=g_shift,
        ))
        scales[f"layers.{l}"] = {"xn_att": s_xa, "q": s_q, "k": s_k, "v": s_v, "att_out": s_o, "xn_ffn": s_xf,
                                 "h1": s_h1, "h3": s_h3, "silu": s_silu, "g": s_g}

    s_xfin = obs.get("xn_final") / spec.Q_MAX
    s_logit = obs.get("logits") / (1 << 20)
    scales.update({"xn_final": s_xfin, "logit": s_logit})
    embed, e_scale = quantize_rows(wts.token_embedding)
    e_mult, e_shift = spec.quantize_multipliers(e_scale / s_res)
    if cfg.shared_classifier:
        cls, c_scale = embed, e_scale
    else:
        cls, c_scale = quantize_rows(wts.wcls)
    c_mult, c_shift = spec.quantize_multipliers(c_scale * s_xfin / s_logit)
    t_mult, t_shift = spec.quantize_multiplier(s_logit * math.log2(math.e) * 65536.0)
    return QuantModel(
        config=cfg, source_hash=model.content_hash(), layers=layers,
        embed=embed, embed_mult=e_mult, embed_shift=e_shift,
        cls=cls, cls_mult=c_mult, cls_shift=c_shift,
        final_norm=_gain_q16(wts.rms_final, s_xfin), eps_q=eps_q,
        temp_mult=t_mult, temp_shift=t_shift,
        rope_steps=spec.rope_steps(hs, cfg.rope_theta), sin_table=spec.sine_table(), exp2_table=spec.exp2_table(),
        scales=scales, calibration=info,
    )
