"""`birdgen-ray evaluate --real REAL --synthetic OUT --out EVAL/`: does the synthetic set help?"""

from __future__ import annotations

from birdgen_ray.cli.config_command import config_command
from birdgen_ray.cli.options import fail, line_console, writing_to
from birdgen_ray.evaluate.config import EvaluateConfig
from birdgen_ray.io.audio import AudioReadError
from birdgen_ray.plan.tables import InputError
from birdgen_ray.verify.birdnet import MissingExtra

console = line_console()
INSTALL_HINT = "install birdgen-ray[evaluate]"


def evaluate(config: EvaluateConfig) -> None:
    """Train a linear probe on BirdNET embeddings of real recordings only, and of real + synthetic, and
    compare them on held-out real recordings (grouped CV; see docs/evaluation.md).

    Example: birdgen-ray evaluate --real birdclef/ --synthetic out/ --out eval/   (then open eval/index.html)
    """
    out = config.out
    pipeline, protocol = _evaluation_modules()
    try:
        with writing_to(out):
            result = pipeline.evaluate(config)
    except InputError as exc:
        raise fail(f"{exc.path}: {'; '.join(exc.problems)}") from None
    except (protocol.ProtocolError, AudioReadError, MissingExtra, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    print_summary(result, pipeline.REAL_ONLY)
    console.print(f"wrote {out / pipeline.PAGE_FILE} and {out / 'evaluation.json'}", highlight=False)


evaluate_cmd = config_command(EvaluateConfig, evaluate)


def _evaluation_modules():
    """The evaluation itself, imported here: its probes need scikit-learn and scipy (the evaluate
    extra), and every other command must run without them."""
    try:
        from birdgen_ray.evaluate import pipeline, protocol
    except ImportError as exc:
        raise fail(f"birdgen-ray evaluate needs {exc.name or 'its extra'}: {INSTALL_HINT}") from None
    return pipeline, protocol


def print_summary(result: dict, real_only: str) -> None:
    """Per band, and for the CNN: macro ROC-AUC of every variant and its difference from real only (a gain only when
    the whole 95% interval is above 0), the left-out classes' row, and against the better matched
    real baseline; then every flag that makes a difference meaningless."""
    for band, data in result["bands"].items():
        _print_variants(f"[bold]{band}[/bold]  BirdNET probe", data["variants"], real_only)
    second = result["cnn"]
    if second["enabled"]:
        _print_variants(
            "[bold]full[/bold]  log-mel CNN from scratch (independent of BirdNET)", second["variants"], real_only
        )
        console.print(f"  ({second['note']})", highlight=False)
    leakage = result["leakage"]
    console.print(
        f"withheld: {leakage['withheld_by_reference']} clips made from a test recording, "
        f"{leakage['withheld_near_copies']} near-copies (cosine >= {leakage['near_copy_cosine']})",
        highlight=False,
    )
    split = result["protocol"]["split"]
    if split["kind"] != "recordings":
        console.print(f"[yellow]weaker split:[/yellow] {split['note']}", highlight=False)
    for flag in result["flags"]:
        console.print(f"[yellow]flag:[/yellow] {flag}", highlight=False)


def _print_variants(title: str, variants: dict, real_only: str) -> None:
    console.print(
        f"{title}  macro ROC-AUC, difference from real only (95% CI) | left-out classes | against the better "
        "matched real baseline; GAIN / LOSS only where the whole interval is on one side of 0"
    )
    for name, v in variants.items():
        macro, rare = v["macro"]["roc_auc"], v["left_out"]["roc_auc"]
        if name == real_only:
            console.print(f"  {name:<44} {_num(macro['value'])} | {_num(rare['value'])}", highlight=False)
            continue
        line = f"  {name:<44} {_num(macro['value'])} {_difference(macro)}"
        line += f" | {_num(rare['value'])} {_difference(rare)}"
        if "vs_baseline_difference" in macro:
            line += f" | vs {macro['vs_baseline'].split(': ', 1)[-1]} {_difference(macro, 'vs_baseline_')}"
        console.print(line, highlight=False)


def _difference(cell: dict, prefix: str = "") -> str:
    if f"{prefix}difference" not in cell:
        return ""
    mark = {"gain": " GAIN", "loss": " LOSS"}.get(cell[f"{prefix}verdict"], "")
    return f"{_signed(cell[f'{prefix}difference'])} ({_ci(cell[f'{prefix}difference_ci'])}){mark}"


def _num(x) -> str:
    return "  –  " if x is None else f"{x:.3f}"


def _signed(x) -> str:
    return "–" if x is None else f"{x:+.3f}"


def _ci(ci) -> str:
    return "–" if not ci else f"{ci[0]:+.3f}..{ci[1]:+.3f}"
