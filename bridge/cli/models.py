"""`segue models [list|download|remove]`: the models Segue knows, on this machine or to download."""

import argparse
import sys
import threading

from tqdm import tqdm

from bridge.engine.cpu_kernels import choices_for_this_cpu

# bridge.models is imported in each handler: it loads huggingface_hub (~0.2 s), which `segue --help` must not wait for.


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, download and remove models")
    parser.set_defaults(handler=run_list)
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")

    actions.add_parser("list", help="known models, their size, licence and whether each is here (default)")

    download = actions.add_parser("download", help="download a model with progress; run again to resume")
    download.add_argument("model_id", help="e.g. facebook/musicgen-small")
    download.set_defaults(handler=run_download)

    remove = actions.add_parser("remove", help="delete a downloaded model to free disk space")
    remove.add_argument("model_id")
    remove.set_defaults(handler=run_remove)


def run_list(args: argparse.Namespace) -> int:
    from bridge.models import all_model_statuses

    statuses = all_model_statuses()
    width = max(38, *(len(status.model_id) for status in statuses))  # Stable Audio 3's -base ids are long
    print(f"{'model':{width}} {'size':>8}  {'ch':>2}  {'on disk':>8}  {'state':22} licence / good for")
    for status in statuses:
        known = status.known
        size = (f"{known.size_gb:.1f} GB" if known.size_gb >= 0.1 else "<10 MB") if known else "?"
        disk = _megabytes(status.disk_bytes) if status.disk_bytes else "-"
        state = f"{status.state} ({status.detail})" if status.detail and len(status.detail) < 30 else status.state
        about = f"{known.licence}; {known.description}" if known else status.detail
        print(f"{status.model_id:{width}} {size:>8}  {known.channels if known else '?':>2}  {disk:>8}  {state:22} {about}")
    print("\nPrompts are English. Any other MusicGen id (org/name) or a local model folder works with --model;")
    print("`segue models download ID` fetches one ahead of time (resumable), `segue models remove ID` frees space.")
    print(describe_kernels())
    return 0


def describe_kernels() -> str:
    """Fast mode's int8 kernel on this CPU, per model measured (chosen at a model's first load)."""
    choices = choices_for_this_cpu()
    if not choices:
        return "Fast mode's CPU kernel: measured at a model's first load on this machine (none measured yet)."
    lines = [f"Fast mode's CPU kernel on this machine ({next(iter(choices.values())).cpu}):"]
    lines += [f"  {model}: {choice.describe()}, measured {choice.measured_at}" for model, choice in choices.items()]
    return "\n".join(lines)


def run_download(args: argparse.Namespace) -> int:
    from bridge.models import DownloadProgress, download_model

    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=None, dynamic_ncols=True)

    def show(progress: DownloadProgress) -> None:
        bar.total = progress.bytes_total
        bar.n = progress.bytes_done
        bar.set_description(progress.stage if progress.stage in ("verifying", "converting") else
                            f"{progress.files_done}/{progress.files_total} files")
        bar.refresh()

    try:
        path = download_model(args.model_id, on_progress=show, cancel=threading.Event())
    except KeyboardInterrupt:
        bar.close()
        print(f"stopped; run `segue models download {args.model_id}` again to resume", file=sys.stderr)
        raise
    finally:
        bar.close()
    print(f"{args.model_id} is ready: {path}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from bridge.models import model_status, remove_model

    before = model_status(args.model_id)
    freed = remove_model(args.model_id)
    if freed == 0 and before.disk_bytes == 0:
        print(f"{args.model_id} is not on this machine")
    else:
        print(f"removed {args.model_id}: {_megabytes(freed)} freed")
    return 0


def _megabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"
