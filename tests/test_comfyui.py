"""The ComfyUI node folder (integrations/comfyui/msrnet/), loaded the way ComfyUI loads it.

ComfyUI imports a custom node folder by file location (``spec_from_file_location`` on its
``__init__.py``, under a module name made from its path), then its "Load Upscale Model" node
calls ``spandrel.ModelLoader().load_from_file``. The tests do exactly that in a fresh
interpreter whose path holds only the node folder and the installed packages (msrnet from this
tree standing in for the installed one), so nothing of the test process leaks in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import msrnet

REPO_ROOT = Path(__file__).resolve().parents[1]
NODE = REPO_ROOT / "integrations" / "comfyui" / "msrnet"
SRC = Path(msrnet.__file__).resolve().parents[1]

# What ComfyUI's nodes.load_custom_node does with a node folder, then "Load Upscale Model" and
# "Upscale Image (using Model)" on a 37x53 image, for each file given; one JSON line per file.
LOAD_LIKE_COMFYUI = r"""
import importlib.util, json, logging, os, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)
node_dir, files = sys.argv[1], sys.argv[2:]
name = os.path.abspath(node_dir).replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, os.path.join(node_dir, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
try:
    spec.loader.exec_module(module)
except Exception as e:
    print("IMPORT FAILED:", e)
    sys.exit(3)
assert module.NODE_CLASS_MAPPINGS == {} and module.NODE_DISPLAY_NAME_MAPPINGS == {}
import spandrel, torch
torch.manual_seed(0)
image = torch.rand(1, 3, 37, 53)
for path in files:
    descriptor = spandrel.ModelLoader().load_from_file(path)
    with torch.no_grad():
        out = descriptor(image)
    import msrnet
    name = os.path.basename(path).removesuffix(".safetensors")  # arch.tag
    model = msrnet.create_model(name, pretrained=True).eval()
    with torch.no_grad():  # spandrel's descriptor clamps to [0, 1], as msrnet.upscale does
        reference = model(image).clamp(0, 1)
    print(json.dumps({"file": os.path.basename(path), "arch": descriptor.architecture.id, "scale": descriptor.scale,
                      "shape": list(out.shape), "max_diff": float((out - reference).abs().max())}))
"""


def run_node(*args: str, block: str = "") -> subprocess.CompletedProcess[str]:
    # -I: no user site, no PYTHONPATH, no current folder; the path is set here explicitly.
    code = f"import sys; sys.path[:0] = [{str(NODE)!r}, {str(SRC)!r}]\n{block}\n{LOAD_LIKE_COMFYUI}"
    return subprocess.run(
        [sys.executable, "-I", "-c", code, str(NODE), *args],
        capture_output=True, text=True, timeout=900, cwd=os.path.dirname(NODE),
    )


@pytest.mark.slow
def test_every_shipped_file_loads_and_upscales_as_in_comfyui() -> None:
    pytest.importorskip("spandrel")
    from msrnet.models._pretrained import PRETRAINED_SHA256, WEIGHTS_DIR, pretrained_file

    files = [str(pretrained_file(name)) for name in PRETRAINED_SHA256]
    assert sorted(Path(f).name for f in files) == sorted(p.name for p in WEIGHTS_DIR.glob("*.safetensors"))
    proc = run_node(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(f"[msrnet] msrnet {msrnet.__version__}:" in line and "registered" in line for line in lines), proc.stdout
    results = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(results) == len(files)
    for r in results:
        scale = int(r["file"].split("_x")[1].split(".")[0])
        assert r["arch"] == "msrnet" and r["scale"] == scale
        assert r["shape"] == [1, 3, 37 * scale, 53 * scale]
        assert r["max_diff"] < 1e-5, r


def test_without_msrnet_the_log_says_what_to_install() -> None:
    proc = run_node(block="sys.modules['msrnet'] = None")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "ERROR [msrnet] msrnet files cannot be loaded" in proc.stdout
    assert 'pip install "msrnet[spandrel]"' in proc.stdout
    assert "IMPORT FAILED: msrnet custom node:" in proc.stdout


def test_node_folder_has_what_comfyui_tooling_reads() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    requirements = (NODE / "requirements.txt").read_text().splitlines()
    assert [r for r in requirements if r and not r.startswith("#")] == ["msrnet[spandrel]"]
    meta = tomllib.loads((NODE / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["version"] == msrnet.__version__
    assert project["name"] and project["description"] and project["license"] == {"text": "MIT"}
    assert "Repository" in project["urls"]
    assert {"PublisherId", "DisplayName", "Icon"} <= set(meta["tool"]["comfy"])
