"""What does the text side cost a fresh process? Segue's T5 against transformers'. (A benchmark, not a test.)

    python bench/text_encoder_startup.py [--model FOLDER] [--runs 5]

Each run is a new Python process that imports, loads a MusicGen folder's tokenizer and T5 weights
(`text_encoder.*` of model.safetensors) and encodes two prompts, and reports each stage's wall time:
- segue: bridge/engine/musicgen/modules (tokenizers + torch only);
- transformers: AutoTokenizer and T5EncoderModel, the path the engine took before.
The folder defaults to the tiny random model (built on first use); pass a real checkpoint folder
(musicgen-small: t5-base) for real sizes. Prints best and median per stage, with the CPU, its vector
extensions and the load average.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_startup import vector_flags  # noqa: E402  (sibling scripts, not a package)
from engine_speed import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["lofi hip hop beat with warm pads", ""]

# Run in the child: prints {"import": s, "load": s, "encode": s}.
CHILD = """
import json, sys, time
started = time.perf_counter()
kind, folder = sys.argv[1], sys.argv[2]
prompts = json.loads(sys.argv[3])
import torch
from safetensors.torch import load_file
if kind == "segue":
    from bridge.engine.musicgen.modules.t5 import load_t5_encoder, t5_config
    from bridge.engine.musicgen.modules.tokenizer import TextTokenizer
else:
    from transformers import AutoTokenizer, T5Config, T5EncoderModel
imported = time.perf_counter()
values = json.load(open(f"{folder}/config.json"))["text_encoder"]
state = {name[13:]: tensor for name, tensor in load_file(f"{folder}/model.safetensors").items()
         if name.startswith("text_encoder.")}
if kind == "segue":
    tokenizer, encoder = TextTokenizer.from_folder(folder), load_t5_encoder(t5_config(values), state)
    encode = lambda: encoder(*tokenizer(prompts))
else:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = T5EncoderModel(T5Config(**values)).eval()
    encoder.load_state_dict(state, strict=False)
    encode = lambda: encoder(**tokenizer(prompts, return_tensors="pt", padding=True)).last_hidden_state
loaded = time.perf_counter()
with torch.inference_mode():
    encode()
encoded = time.perf_counter()
print(json.dumps({"import": imported - started, "load": loaded - imported, "encode": encoded - loaded}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a MusicGen checkpoint folder (default: the tiny random model)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "SEGUE_CACHE_DIR": scratch}
        folder = args.model
        if folder is None:
            os.environ["SEGUE_CACHE_DIR"] = scratch
            from bridge.engine.musicgen.loading import resolve_checkpoint

            folder = Path(resolve_checkpoint("tiny"))
        print(f"machine: {cpu_model()} ({vector_flags()}), {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.2f}; folder {folder}")
        for kind in ("segue", "transformers"):
            runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, kind, str(folder), json.dumps(PROMPTS)],
                                              env=env, check=True, capture_output=True, text=True, cwd=ROOT,
                                              timeout=300).stdout.strip().splitlines()[-1])
                    for _ in range(args.runs)]
            stages = ", ".join(f"{stage} best {min(run[stage] for run in runs):5.2f} s median "
                               f"{statistics.median(run[stage] for run in runs):5.2f} s" for stage in runs[0])
            print(f"{kind:<13} {stages}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
