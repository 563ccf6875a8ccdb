"""From a float BERT-family encoder to its int8 model (docs/int8-spec.md, "Encoders").

Static activation scales are calibrated by running the float reference (orchestrator/model/bert.py)
over calibration inputs: for models with a tokenizer, the built-in English sentences below (none of
them is a test sentence), else seeded random token sequences. Weights are int8 per output row, rounded
by GPTQ against the calibration inputs' Gram matrices (gptq_rows); FFN activation tables are coded with
an offset per class (act_tables).

The result holds whole (unpartitioned) integer tensors under plain names; the partition layer
(orchestrator/partition/split_encoder.py) slices them per chip and gives them shard kinds.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from orchestrator.errors import InputError
from orchestrator.quant import spec
from orchestrator.quant.quantize import quantize_rows
from orchestrator.quant.spec_bert import LN32_GAIN_SHIFT

CALIB_SEED = 4321
ENCODER_SPEC_VERSION = 2  # bump when the encoder's integer tensors change meaning (the shard cache keys on it)
RES_SCALE = 1 << 16  # int32 sums and norm outputs: max |value| / 2^16 (256x headroom below RES_MAX)
LAYER_PARAMS = 32
SMALL_PARAMS = 8

# Calibration sentences: varied topics and lengths, disjoint from the test sentences.
CALIBRATION_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "She bought three apples, two pears and a loaf of bread at the market on Saturday.",
    "The central bank raised interest rates by a quarter of a percentage point to curb inflation.",
    "How do I reset my password if I no longer have access to my email account?",
    "Mount Everest is the highest mountain above sea level, located in the Himalayas.",
    "In 1969, Apollo 11 landed the first humans on the Moon.",
    "Please remember to water the plants while I am away on holiday.",
    "The orchestra performed Beethoven's ninth symphony to a sold-out audience.",
    "Neural networks learn representations by adjusting weights with gradient descent.",
    "A cup of coffee in the morning helps many people wake up.",
    "The train to Zurich departs from platform seven at 8:45.",
    "Rainforests host more than half of the world's plant and animal species.",
    "He scored the winning goal in the final minute of extra time!",
    "Low-power microcontrollers run small models at the edge, far from any data center.",
    "What is the capital of Australia? Many people guess Sydney, but it is Canberra.",
    # short inputs: a few tokens between [CLS] and [SEP] make the largest attention outputs
    "Yes.",
    "Good morning!",
    "Why not?",
    "Great job",
    "OK",
    "See you soon!",
)


@dataclass
class QuantEncoder:
    config: object  # EncoderConfig
    source_hash: str
    tensors: dict[str, np.ndarray]  # whole-model integer tensors by name (see split_encoder.TENSORS)
    output_scale: float  # real value of one unit of the pooled int32 embedding
    scales: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)

    kind = "encoder"

    def content_hash(self) -> str:
        h = hashlib.sha256(b"orch-int8-encoder-v1\0")
        h.update(self.source_hash.encode())
        for name in sorted(self.tensors):
            h.update(name.encode() + b"\0")
            h.update(np.ascontiguousarray(self.tensors[name]).data)
        h.update(repr(self.output_scale).encode())
        return h.hexdigest()


class Observer:
    """max |activation| per (site, layer), per channel (the last axis) and overall; and, for the sites
    that matrix products read, the Gram matrix sum(x^T x) of the rows (GPTQ's Hessian, gptq_rows)."""

    GRAM_SITES = ("emb_out", "ctx", "att_out", "s", "out")  # plus ffn{f}_out and ffn{f}_g

    def __init__(self):
        self.chan: dict[tuple[str, int], np.ndarray] = {}
        self.gram: dict[tuple[str, int], np.ndarray] = {}

    def __call__(self, site: str, layer: int, arr: np.ndarray) -> None:
        if not arr.size:
            return
        x = np.asarray(arr, dtype=np.float64).reshape(-1, arr.shape[-1])
        m = np.abs(x).max(axis=0)
        key = (site, layer)
        old = self.chan.get(key)
        self.chan[key] = m if old is None else np.maximum(old, m)
        if site in self.GRAM_SITES or (site.startswith("ffn") and site.endswith(("_out", "_g"))):
            g = x.T @ x
            self.gram[key] = g if key not in self.gram else self.gram[key] + g

    def get(self, site: str, layer: int = -1) -> float:
        v = self.chan.get((site, layer))
        m = float(v.max()) if v is not None else 0.0
        return m if m > 0 else 1e-6

    def channels(self, site: str, layer: int = -1) -> np.ndarray:
        v = self.chan.get((site, layer))
        return np.maximum(v, 1e-6) if v is not None else None


ACT_CLASSES = 6  # exponent classes of int8 activations and activation tables: steps base * 2^c, c = 0..5


def channel_classes(amax: np.ndarray) -> tuple[float, np.ndarray]:
    """Base step and power-of-two exponent class per channel: channel i's int8 step is base * 2^class[i].

    base = median(amax) / 127 covers half the channels with class 0; outlier channels (BERT's LayerNorm
    outputs and FFN units have a few, 10-80x the typical range) get coarser steps, up to 32x. Products
    read such an activation as x << class (spec_bert.matmul_s8e_s32), so the weights keep their own
    per-row int8 scales.
    """
    amax = np.asarray(amax, dtype=np.float64)
    base = max(float(np.median(amax)) / spec.Q_MAX, 1e-12)
    cls = np.clip(np.ceil(np.log2(np.maximum(amax / spec.Q_MAX, 1e-30) / base)), 0, ACT_CLASSES - 1).astype(np.int64)
    return base, cls


def act_tables(kind: str, h_base: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Activation tables with an offset: (ACT_CLASSES, 256) int8 lut, g_base and the int64 zero of each class.

    Entry k of class c codes act(k * h_base * 2^c) as v with act ~= (v + zero[c]) * g_base * 2^c. GELU and
    ReLU outputs are one-sided (>= -0.17), so the 255 codes span [min, max] of the class's outputs instead
    of +-max: twice the resolution of a symmetric code. A product reading v << c gains
    sum_i w[r, i] * (zero[c_i] << c_i), an exact integer per output row that the quantizer adds to the bias.
    """
    k = np.arange(-128, 128, dtype=np.float64)
    outs = [act_table_f64(kind, k * h_base * 2.0 ** c) for c in range(ACT_CLASSES)]
    g_base = max(max((float(y.max()) - float(y.min())) / (2 * spec.Q_MAX) / 2.0 ** c for c, y in enumerate(outs)), 1e-12)
    lut = np.zeros((ACT_CLASSES, 256), np.int8)
    zero = np.zeros(ACT_CLASSES, np.int64)
    for c, y in enumerate(outs):
        code = np.rint(y / (g_base * 2.0 ** c))
        zero[c] = int(code.max()) - spec.Q_MAX  # the largest output gets code +127
        lut[c] = np.clip(code - zero[c], -spec.Q_MAX, spec.Q_MAX).astype(np.int8)
    return lut, g_base, zero


def act_table_f64(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "gelu":
        return np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def calibration_inputs(model, n_random: int = 8, length: int = 24) -> list[list[int]]:
    cfg = model.config
    seqs = []
    if model.tokenizer is not None:
        seqs = [ids[:cfg.max_seq_len] for ids in (model.tokenizer.encode(t) for t in CALIBRATION_TEXTS)]
    else:
        rng = np.random.default_rng(CALIB_SEED)
        n = min(length, cfg.max_seq_len)
        for _ in range(n_random):
            seqs.append(rng.integers(0, cfg.vocab_size, size=n).tolist())
    return seqs


def calibrate(model) -> tuple[Observer, dict]:
    from orchestrator.model.bert import FloatEncoder
    obs = Observer()
    fe = FloatEncoder(model)
    seqs = calibration_inputs(model)
    for ids in seqs:
        fe.hidden_states(ids, observer=obs)
    what = (f"{len(seqs)} built-in English sentences (quantize_encoder.CALIBRATION_TEXTS)" if model.tokenizer is not None
            else f"{len(seqs)} seeded random token sequences (seed {CALIB_SEED})")
    return obs, {"sequences": len(seqs), "tokens": int(sum(len(s) for s in seqs)),
                 "method": f"max |activation| of the float model over {what}"}


# --- helpers ------------------------------------------------------------------------------------

def _clip32(v: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(v), -(2 ** 31 - 1), 2 ** 31 - 1).astype(np.int64)


GPTQ_DAMP = 0.01  # GPTQ's damping: this fraction of the Gram matrix's mean diagonal is added to its diagonal
GPTQ_BLOCK = 128


def gptq_factor(gram: np.ndarray) -> np.ndarray | None:
    """Upper Cholesky factor u of the damped inverse Gram matrix (inv(H) = u^T u), or None if H is singular
    even after damping. Scaling the inputs by a constant scales u and leaves GPTQ's rounding unchanged, so
    one factor serves every product that reads the same site."""
    h = np.array(gram, dtype=np.float64)
    n = h.shape[0]
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0  # an input that was always 0: nothing to compensate through it
    h[np.diag_indices(n)] += GPTQ_DAMP * float(np.mean(np.diag(h)))
    try:
        return np.linalg.cholesky(np.linalg.inv(h)).T
    except np.linalg.LinAlgError:
        return None


def gptq_rows(w: np.ndarray, u: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-row int8 on quantize_rows' grid (scale = max|row| / 127), rounded by GPTQ (Frantar et al. 2022):
    columns are quantized in order and each column's rounding error is spread over the columns not yet
    quantized, weighted by the inverse of the inputs' Gram matrix, so the product's error on inputs like
    the calibration ones shrinks (all-MiniLM-L6-v2: int8 weights alone, min cosine 0.995 -> 0.9985). Same
    integer format as plain rounding; only which of the two nearest codes a weight gets changes.
    """
    w = w.astype(np.float64).copy()
    rows, n = w.shape
    amax = np.abs(w).max(axis=1)
    amax[amax == 0] = 1.0
    scale = amax / spec.Q_MAX
    if u is None:
        return quantize_rows(w)
    q = np.zeros((rows, n), np.int8)
    for b0 in range(0, n, GPTQ_BLOCK):
        b1 = min(n, b0 + GPTQ_BLOCK)
        wb = w[:, b0:b1]
        err = np.zeros((rows, b1 - b0))
        for j in range(b1 - b0):
            i = b0 + j
            qj = np.clip(np.rint(wb[:, j] / scale), -spec.Q_MAX, spec.Q_MAX)
            q[:, i] = qj
            e = (wb[:, j] - qj * scale) / u[i, i]
            wb[:, j + 1:] -= np.outer(e, u[i, i + 1:b1])
            err[:, j] = e
        w[:, b1:] -= err @ u[b0:b1, b1:]
    return q, scale


def _rqb(w: np.ndarray, b: np.ndarray | None, s_in: float, s_out, gptq_u: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and (rows, 3) multiplier, shift, bias mapping acc + bias to s_out (scalar or per row).

    s_in is the step of the input's class 0 (an input channel of class c counts 2^c of them). With the
    factor of the inputs' Gram matrix (gptq_factor) the rows are rounded by GPTQ, else to nearest.
    """
    ws = w.astype(np.float64) * float(s_in)
    q, s_w = quantize_rows(ws) if gptq_u is None else gptq_rows(ws, gptq_u)
    mult, shift = spec.quantize_multipliers(s_w / np.asarray(s_out, dtype=np.float64))
    bias = np.zeros(w.shape[0]) if b is None else _clip32(b.astype(np.float64) / s_w)
    return q, np.stack([mult.astype(np.int64), shift.astype(np.int64), bias], axis=1).astype(np.int32)


def _rows_rq(table: np.ndarray, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    q, s = quantize_rows(table)
    m, sh = spec.quantize_multipliers(s / s_out)
    return q, np.stack([m, sh.astype(np.int32)], axis=1).astype(np.int32)


@dataclass
class NormSite:
    norm: np.ndarray  # (n, 5) int32: gain, bias, int8-copy multiplier, shift, exponent class
    arg: int  # eps_q (LayerNorm) or shift (NoNorm)
    s32: float  # scale of the int32 output
    base: float  # step of the int8 copy's class 0: channel i's step is base * 2^class[i]


def _norm_site(kind: str, g: np.ndarray, b: np.ndarray, s_in: float, amax_ch: np.ndarray, eps: float,
               where: str) -> NormSite:
    g = g.astype(np.float64)
    b = b.astype(np.float64)
    amax_out = float(amax_ch.max())
    if kind == "layernorm":
        # Q16 gains relative to the output scale must stay below 2^31: the scale is coarsened if needed.
        s32 = max(amax_out / RES_SCALE, float(max(np.abs(g).max(), np.abs(b).max())) / (1 << 14), 1e-30)
        G = np.rint(g / s32 * (1 << LN32_GAIN_SHIFT))
        B = np.rint(b / s32 * (1 << LN32_GAIN_SHIFT))
        arg = max(1, int(round(eps / (s_in * s_in))))
        if arg >= 2 ** 31:
            raise InputError(f"{where}: the LayerNorm epsilon is too large for the int8 spec's input scale")
    else:
        s32 = amax_out / RES_SCALE
        gf, bf = g * s_in / s32, b / s32
        m = max(float(np.abs(gf).max()), float(np.abs(bf).max()), 1e-30)
        arg = 62
        while arg > 1 and m * 2.0 ** arg >= 2 ** 31 - 1:
            arg -= 1
        if m * 2.0 ** arg >= 2 ** 31 - 1:
            raise InputError(f"{where}: a NoNorm weight is too large for the int8 spec")
        G, B = np.rint(gf * 2.0 ** arg), np.rint(bf * 2.0 ** arg)
    if np.any(np.abs(G) >= 2 ** 31) or np.any(np.abs(B) >= 2 ** 31):
        raise InputError(f"{where}: a norm weight or bias is too large for the int8 spec; the checkpoint looks corrupt")
    base, cls = channel_classes(amax_ch)
    qm, qs = spec.quantize_multipliers(s32 / (base * np.exp2(cls)))
    norm = np.stack([G, B, qm.astype(np.float64), qs.astype(np.float64), cls.astype(np.float64)], axis=1)
    return NormSite(norm.astype(np.int64).astype(np.int32), int(arg), s32, base)


# --- the quantizer ------------------------------------------------------------------------------

def quantize_encoder(model) -> QuantEncoder:
    cfg = model.config
    W = model.weights
    obs, info = calibrate(model)
    t: dict[str, np.ndarray] = {}
    scales: dict = {}
    mb = cfg.variant == "mobilebert"
    Q = spec.Q_MAX
    ch = obs.channels
    t["exp2"] = spec.exp2_table()

    # embedding
    s_t = obs.get("emb_sum") / RES_SCALE
    ep = np.zeros(SMALL_PARAMS, np.int32)
    if mb:
        s_e32, s_e8 = obs.get("emb_word") / RES_SCALE, obs.get("emb_word") / Q
        t["word"], t["word_rq"] = _rows_rq(W["word_emb"], s_e32)
        ep[0], ep[1] = spec.quantize_multiplier(s_e32 / s_e8)
        t["proj"], t["proj_rqb"] = _rqb(W["emb_proj.w"], W["emb_proj.b"], s_e8, s_t)
        scales["emb_word"] = s_e8
    else:
        t["word"], t["word_rq"] = _rows_rq(W["word_emb"], s_t)
    t["pos"], t["pos_rq"] = _rows_rq(W["pos_emb"], s_t)
    t["type"], t["type_rq"] = _rows_rq(W["type_emb"], s_t)
    ns = _norm_site(cfg.norm, W["emb_norm.w"], W["emb_norm.b"], s_t, ch("emb_out"), cfg.norm_eps, "embedding norm")
    t["emb_norm"] = ns.norm
    ep[2] = ns.arg
    t["emb_params"] = ep
    scales["embedding"] = {"sum": s_t, "out32": ns.s32}
    x32, x8 = ns.s32, ns.base  # the stream between blocks: int32 scale, class-0 step of its int8 copy
    x_site = ("emb_out", -1)  # where the calibration saw the stream (its Gram matrix rounds the weights reading it)
    factors: dict = {}

    def gram(site):
        if site not in factors:
            factors[site] = gptq_factor(obs.gram[site]) if site in obs.gram else None
        return factors[site]
    hs = cfg.head_size

    for l in range(cfg.n_layers):
        p = lambda k: W[f"layers.{l}.{k}"]  # noqa: E731
        g = lambda site: obs.get(site, l)  # noqa: E731
        P = np.zeros(LAYER_PARAMS, np.int32)
        sc: dict = {}
        s_v = g("v") / Q
        if mb:
            s_ta, s_ts = g("bin_acc") / RES_SCALE, g("batt_acc") / RES_SCALE
            wa, ra = _rqb(p("bin.w"), p("bin.b"), x8, s_ta, gram(x_site))
            ws, rs = _rqb(p("batt.w"), p("batt.b"), x8, s_ts, gram(x_site))
            wv, rv = _rqb(p("wv"), p("bv"), x8, s_v, gram(x_site))
            t[f"layers.{l}.in"] = np.concatenate([wa, ws, wv])
            t[f"layers.{l}.in_rqb"] = np.concatenate([ra, rs, rv])
            na = _norm_site(cfg.norm, p("bin_norm.w"), p("bin_norm.b"), s_ta, ch("a", l), cfg.norm_eps, f"layer {l} input bottleneck")
            nsb = _norm_site(cfg.norm, p("batt_norm.w"), p("batt_norm.b"), s_ts, ch("s", l), cfg.norm_eps, f"layer {l} attention bottleneck")
            t[f"layers.{l}.bin_norm"], t[f"layers.{l}.batt_norm"] = na.norm, nsb.norm
            P[4], P[5] = na.arg, nsb.arg
            qk_in, res32, qk_site = nsb.base, na.s32, ("s", l)
            sc.update({"a": na.s32, "s": nsb.s32})
        else:
            qk_in, res32, qk_site = x8, x32, x_site
            t[f"layers.{l}.wv"], t[f"layers.{l}.wv_rqb"] = _rqb(p("wv"), p("bv"), x8, s_v, gram(x_site))
        s_q, s_k, s_o = g("q") / Q, g("k") / Q, g("ctx") / Q
        t[f"layers.{l}.wq"], t[f"layers.{l}.wq_rqb"] = _rqb(p("wq"), p("bq"), qk_in, s_q, gram(qk_site))
        t[f"layers.{l}.wk"], t[f"layers.{l}.wk_rqb"] = _rqb(p("wk"), p("bk"), qk_in, s_k, gram(qk_site))
        P[0], P[1] = spec.quantize_multiplier(s_q * s_k / math.sqrt(hs) * math.log2(math.e) * 65536.0)
        P[2], P[3] = spec.quantize_multiplier(s_v / (1 << spec.PROB_SHIFT) / s_o)
        s_t = g("att_sum") / RES_SCALE
        t[f"layers.{l}.wo"], t[f"layers.{l}.wo_rqb"] = _rqb(p("wo"), p("bo"), s_o, s_t, gram(("ctx", l)))
        P[9], P[10] = spec.quantize_multiplier(res32 / s_t)
        n_att = _norm_site(cfg.norm, p("att_norm.w"), p("att_norm.b"), s_t, ch("att_out", l), cfg.norm_eps,
                           f"layer {l} attention norm")
        t[f"layers.{l}.att_norm"] = n_att.norm
        P[11] = n_att.arg
        y32, y8, y_site = n_att.s32, n_att.base, ("att_out", l)
        sc.update({"q": s_q, "k": s_k, "v": s_v, "ctx": s_o, "att_sum": s_t, "att_out": y32})
        for f in range(cfg.n_ffn):
            # FFN units in power-of-two classes: unit i's pre-activation step is base * 2^c[i], its
            # activation table is class c's, and W2 reads the activation with the same exponent class.
            h_base, h_cls = channel_classes(ch(f"ffn{f}_h", l))
            s_h = h_base * np.exp2(h_cls)
            lut, g_base, g_zero = act_tables(cfg.act, h_base)
            s_tf = g(f"ffn{f}_sum") / RES_SCALE
            t[f"layers.{l}.ffn{f}.w1"], t[f"layers.{l}.ffn{f}.w1_rqb"] = _rqb(p(f"ffn{f}.w1"), p(f"ffn{f}.b1"), y8, s_h, gram(y_site))
            t[f"layers.{l}.ffn{f}.cls"] = h_cls.astype(np.int8)
            t[f"layers.{l}.ffn{f}.lut"] = lut
            w2, rqb2 = _rqb(p(f"ffn{f}.w2"), p(f"ffn{f}.b2"), g_base, s_tf,
                              gram((f"ffn{f}_g", l)))
            # the tables' offset: sum_i w[r, i] * (zero[c_i] << c_i), exact, enters each row's int32 bias
            fold = w2.astype(np.int64) @ (g_zero[h_cls] << h_cls)
            rqb2[:, 2] = np.clip(rqb2[:, 2].astype(np.int64) + fold, -(2 ** 31 - 1), 2 ** 31 - 1)
            t[f"layers.{l}.ffn{f}.w2"], t[f"layers.{l}.ffn{f}.w2_rqb"] = w2, rqb2
            nf = _norm_site(cfg.norm, p(f"ffn{f}.norm.w"), p(f"ffn{f}.norm.b"), s_tf, ch(f"ffn{f}_out", l), cfg.norm_eps,
                            f"layer {l} FFN {f} norm")
            t[f"layers.{l}.ffn{f}.norm"] = nf.norm
            fp = np.zeros(SMALL_PARAMS, np.int32)
            fp[0], fp[1] = spec.quantize_multiplier(y32 / s_tf)
            fp[2] = nf.arg
            t[f"layers.{l}.ffn{f}.params"] = fp
            sc.update({f"ffn{f}_h": h_base, f"ffn{f}_g": g_base, f"ffn{f}_sum": s_tf, f"ffn{f}_out": nf.s32})
            y32, y8, y_site = nf.s32, nf.base, (f"ffn{f}_out", l)
        if mb:
            s_tb = g("bout_sum") / RES_SCALE
            t[f"layers.{l}.bout"], t[f"layers.{l}.bout_rqb"] = _rqb(p("bout.w"), p("bout.b"), y8, s_tb, gram(y_site))
            P[14], P[15] = spec.quantize_multiplier(x32 / s_tb)
            nb = _norm_site(cfg.norm, p("bout_norm.w"), p("bout_norm.b"), s_tb, ch("out", l), cfg.norm_eps,
                            f"layer {l} output bottleneck")
            t[f"layers.{l}.bout_norm"] = nb.norm
            P[16] = nb.arg
            x32, x8, x_site = nb.s32, nb.base, ("out", l)
            sc.update({"bout_sum": s_tb, "out": x32})
        else:
            x32, x8, x_site = y32, y8, y_site
        t[f"layers.{l}.params"] = P
        scales[f"layers.{l}"] = sc
    scales["output32"] = x32
    return QuantEncoder(cfg, model.content_hash(), t, x32, scales, info)
