"""`orch`: argument parsing and user-facing errors. The work happens in the layers below."""

from __future__ import annotations

import argparse
import json
import sys

from orchestrator import __version__
from orchestrator.errors import OrchError

MODEL_HELP = ("model: a built-in name (tinyllama-42m: the llama2.c stories42M shape with SYNTHETIC weights "
              "from a seed; tiny-test: a small synthetic GQA model) or a llama2.c checkpoint path "
              "(legacy or 'ak42' v1 export)")


def _positive(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {v!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _temperature(v: str) -> float:
    try:
        t = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {v!r}") from None
    if not 0.0 <= t <= 100.0:
        raise argparse.ArgumentTypeError("must be between 0 (greedy) and 100")
    return t


def _ids(v: str) -> list[int]:
    try:
        ids = [int(p) for p in v.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected token ids like '1,2,3' or '1 2 3', got {v!r}") from None
    if any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError("token ids cannot be negative")
    return ids


def _add_model_args(p: argparse.ArgumentParser, chips_default: int | None = 8) -> None:
    p.add_argument("--model", "-m", default="tinyllama-42m", help=MODEL_HELP + " (default: %(default)s)")
    p.add_argument("--seed-weights", type=int, default=0, metavar="S",
                   help="seed of a built-in model's synthetic weights (default: %(default)s)")
    p.add_argument("--profile", "-p", default=None,
                   help="chip profile: siracusa (default), mps2-an386, or a .toml file")
    p.add_argument("--context", type=_positive, default=None,
                   help="positions the KV cache holds (default: the model's seq_len)")
    if chips_default is not None:
        p.add_argument("--chips", "-n", type=_positive, default=chips_default,
                       help="number of chips to split the model over (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="orch",
        description="Run transformer models tensor-parallel on a cluster of low-power MCUs: quantize to int8, "
                    "partition so every chip's weights stay on chip, flash, run, and measure. Without a cluster "
                    "file every command uses a loopback mock of 8 chips running the real firmware.",
        epilog="Start with: orch plan, then orch flash && orch run --tokens 64. Every command takes --help.")
    ap.add_argument("--version", action="version", version=f"orch {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plan", help="show how a model splits over N chips and where each tensor lives",
                       description="Partition a model over N chips and place every tensor in a chip memory. "
                                   "Shows, per chip, bytes on chip and off chip against each memory's size and "
                                   "what one token costs in off-chip and link traffic. Needs no hardware.")
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("reference", help="generate tokens with the host reference (fp32, or int8 simulated on N chips)",
                       description="Run the host-side references: the float32 model with llama2.c's semantics, or "
                                   "the int8 integer spec simulated on N chips with explicit all-reduces.")
    _add_model_args(p, chips_default=1)
    p.add_argument("--tokens", "-t", type=_positive, default=16, help="tokens to generate (default: %(default)s)")
    p.add_argument("--precision", choices=["fp32", "int8"], default="int8", help="default: %(default)s")
    p.add_argument("--prompt-ids", type=_ids, default=[], metavar="IDS",
                   help="prompt token ids after BOS, e.g. '450,4996'")
    p.add_argument("--temperature", type=_temperature, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--tokenizer", default=None, help="llama2.c tokenizer.bin to print text as well as ids")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_reference)
    return ap


# --- commands -----------------------------------------------------------------------------------

def cmd_plan(args) -> int:
    from orchestrator.model.synthetic import load_model
    from orchestrator.partition.plan import make_plan
    from orchestrator.profiles import load_profile
    from orchestrator.report.console import print_plan

    profile = load_profile(args.profile)
    model = load_model(args.model, seed=args.seed_weights)
    plan = make_plan(model.config, args.chips, profile, args.context)
    summary = plan.summary()
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_plan(plan, summary)
    return 0


def cmd_reference(args) -> int:
    from orchestrator.model.synthetic import load_model
    from orchestrator.profiles import load_profile

    model = load_model(args.model, seed=args.seed_weights)
    tokenizer = None
    if args.tokenizer:
        from orchestrator.model.tokenizer import load_tokenizer
        tokenizer = load_tokenizer(args.tokenizer, model.config.vocab_size)
    for t in args.prompt_ids:
        if t >= model.config.vocab_size:
            raise OrchError(f"--prompt-ids: id {t} is outside the vocabulary of {model.config.name} (0..{model.config.vocab_size - 1})")
    if args.precision == "fp32":
        from orchestrator.model.sampling import generate
        tokens = generate(model, args.prompt_ids, args.tokens, temperature=args.temperature, seed=args.seed,
                          stop_on_bos=False)
        chips = 1
    else:
        from orchestrator.partition.cache import get_shards, open_shards
        from orchestrator.partition.simulator import ClusterSim
        profile = load_profile(args.profile)
        shard_set = get_shards(model, args.chips, profile, args.context)
        _, shards = open_shards(shard_set)
        result = ClusterSim(shards).generate(args.prompt_ids, args.tokens,
                                             temp_q16=int(round(args.temperature * 65536)), seed=args.seed)
        tokens, chips = result.tokens, args.chips
    out = {"model": model.config.name, "synthetic_weights": bool(model.config.synthetic), "precision": args.precision,
           "chips": chips, "prompt_ids": args.prompt_ids, "tokens": tokens}
    if tokenizer:
        out["text"] = tokenizer.decode(tokens)
    if args.json:
        print(json.dumps(out))
    else:
        from orchestrator.report.console import print_tokens
        print_tokens(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except OrchError as e:
        print(f"orch: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("orch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
