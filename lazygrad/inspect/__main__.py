"""The command line: `lazygrad-inspect SCRIPT.py [ARGS...]` (or `python -m lazygrad.inspect ...`)."""
from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback

from . import FORMATS, STAGES

DESCRIPTION = """\
Run a Python script that uses lazygrad and show what its tensor code became:
the graph of every realisation (each time values were needed: print, .item(),
.numpy(), backward(), an optimizer step) at each stage of the pass pipeline,
the kernels it was cut into, their loop programs and LLVM IR, the compile
time of each kernel and the run time of each launch.

A graph of the same structure (a training loop's every step) is compiled once
and reused: it is shown once, and its realisations are listed."""

EPILOG = """\
stages:
  built        the graph as the tensor code built it
  simplified   after constant folding and algebraic identities
  gradients    realisations computing gradients (backward(), lazygrad.grad),
               gradient nodes marked; empty when the script computes none
  scheduled    the simplified graph cut into kernels, each kernel a tree
  all          every stage

formats:
  text   readable trees with dtype and shape per node; kernels marked
         (default stage: scheduled)
  dot    Graphviz: render with `dot -Tsvg out.dot > out.svg` (default: scheduled)
  json   networkx node-link data per graph, kernels with code and times
         (default: all)
  html   one self-contained page (works offline): graphs drawn as SVG,
         click a node for its details and its kernel's code (default: all)

examples:
  lazygrad-inspect examples/train_linear.py
  lazygrad-inspect --stage all --code llvm my_script.py --epochs 1
  lazygrad-inspect --format html -o graph.html my_script.py
  python -m lazygrad.inspect --format json -o run.json my_script.py

LAZYGRAD_DEBUG=1..4 prints launches (1), graphs (2), loop programs (3) and
LLVM IR (4) while any lazygrad program runs, without this tool."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lazygrad-inspect", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=[*STAGES, "all"], default=None,
                   help="which pipeline stage to show (default: scheduled for text and dot, all for json and html)")
    p.add_argument("-f", "--format", choices=FORMATS, default="text", help="output format (default: text)")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="write the output to FILE (default: stdout)")
    p.add_argument("--code", choices=["none", "program", "llvm", "ptx"], default="none",
                   help="text format: also print each kernel's loop program ('program'), "
                        "its loop program and LLVM IR ('llvm'), or those and its PTX ('ptx')")
    p.add_argument("--optimized-ir", action="store_true",
                   help="also keep each kernel's LLVM IR after optimisation (json and html)")
    p.add_argument("--ptx", action="store_true",
                   help="also generate each kernel's PTX for NVIDIA GPUs (no GPU needed; json and html)")
    p.add_argument("script", help="the Python script to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script (its sys.argv[1:])")
    return p


def run_script(path: str, args, optimized_ir: bool = False, ptx: bool = False):
    """Run a script as __main__ while recording; returns (report, exit status)."""
    from .recorder import Recorder
    path = os.path.abspath(path)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(path))
    status = 0
    with Recorder(os.path.relpath(path), args, optimized_ir, ptx) as recorder:
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exit_:
            if isinstance(exit_.code, int) or exit_.code is None:
                status = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
                status = 1
        except BaseException:   # the report is still written: it shows what ran before the error
            traceback.print_exc()
            status = 1
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
    return recorder.report, status


def render(report, fmt: str, stages, code: str = "none") -> str:
    from . import formats
    if fmt == "text":
        text = formats.report_text(report, stages, code)
        if "gradients" in stages and not any("gradients" in p.graphs for p in report.plans):
            text += ("\n(no gradient computation was recorded: the script called neither backward() nor "
                     "lazygrad.grad(), or autograd is not available)\n")
        return text
    if fmt == "dot":
        return formats.dot(formats.report_graphs(report, stages))
    if fmt == "json":
        return formats.report_json(report, stages)
    from .page import page
    return page(report, stages)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.script):
        print(f"lazygrad-inspect: no such script: {args.script}", file=sys.stderr)
        return 2
    stage = args.stage or ("scheduled" if args.format in ("text", "dot") else "all")
    stages = list(STAGES) if stage == "all" else [stage]
    report, status = run_script(args.script, args.args, args.optimized_ir, args.ptx or args.code == "ptx")
    output = render(report, args.format, stages, args.code)
    if args.output == "-":
        sys.stdout.write(output)
        sys.stdout.flush()
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(output)
        print(f"lazygrad-inspect: wrote {args.format} for {len(report.realisations)} realisations "
              f"to {args.output}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
