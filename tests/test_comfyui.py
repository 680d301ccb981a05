"""The ComfyUI node folder (integrations/comfyui/msrnet/), loaded the way ComfyUI loads it.

ComfyUI imports a custom node folder by file location (``spec_from_file_location`` on its
``__init__.py``, under a module name made from its path), then its "Load Upscale Model" node
calls ``spandrel.ModelLoader().load_from_file``. The tests do exactly that in a fresh
interpreter whose path holds only the node folder and the installed packages (msrnet from this
tree standing in for the installed one), so nothing of the test process leaks in.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _extras import needs_extra  # tests/_extras.py

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
    needs_extra("spandrel")
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


# msrnet is on no package index: the command that works installs it from a clone.
INSTALL_COMMAND = 'python -m pip install "PATH/TO/msrnet[spandrel]"'


def test_without_msrnet_the_log_says_what_to_install() -> None:
    proc = run_node(block="sys.modules['msrnet'] = None")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "ERROR [msrnet] msrnet files cannot be loaded" in proc.stdout
    assert INSTALL_COMMAND in proc.stdout
    assert "IMPORT FAILED: msrnet custom node:" in proc.stdout


# The node folder imported as ComfyUI does, with msrnet hidden (not installed), then "Load Upscale
# Model" on each file: the error the web UI shows, one JSON line per file.
LOAD_WITHOUT_MSRNET = r"""
import importlib.util, json, os, sys
sys.modules["msrnet"] = None
node_dir, files = sys.argv[1], sys.argv[2:]
spec = importlib.util.spec_from_file_location("custom_nodes_msrnet", os.path.join(node_dir, "__init__.py"))
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
    print("IMPORTED")
except ImportError as e:
    pass
import spandrel
for path in files:
    try:
        spandrel.ModelLoader().load_from_file(path)
        error = None
    except spandrel.UnsupportedModelError as e:
        error = str(e)
    print(json.dumps({"file": os.path.basename(path), "error": error}))
"""


def test_without_msrnet_loading_an_msrnet_file_says_what_to_install(tmp_path: Path) -> None:
    needs_extra("spandrel")
    import torch
    from safetensors.torch import save_file

    from msrnet.models._pretrained import pretrained_file

    shipped = pretrained_file("msr_small_x4.real")
    other = tmp_path / "other.safetensors"  # not msrnet's: spandrel's own answer is kept
    save_file({"conv.weight": torch.zeros(3, 3, 3, 3)}, str(other))
    proc = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_WITHOUT_MSRNET, str(NODE), str(shipped), str(other)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "IMPORTED" not in proc.stdout  # ComfyUI still lists the node as IMPORT FAILED
    results = {r["file"]: r["error"] for r in map(json.loads, proc.stdout.splitlines())}
    message = results["msr_small_x4.real.safetensors"]
    assert message.startswith("this is an msrnet model: install msrnet into the Python that runs ComfyUI")
    assert INSTALL_COMMAND in message
    # ... and why the node could not import msrnet (here: the test's hiding of it).
    assert message.endswith("then restart ComfyUI (import of msrnet halted; None in sys.modules)")
    assert results["other.safetensors"] == ""


def test_the_node_folder_recognises_msrnet_files_by_msrnet_s_keys() -> None:
    # The node folder cannot import msrnet's detector where msrnet is missing: it holds a copy.
    needs_extra("spandrel")
    from msrnet.integrations.spandrel import DETECT_KEYS

    tree = ast.parse((NODE / "__init__.py").read_text())
    copies = [
        ast.literal_eval(node.value) for node in tree.body
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["_MSRNET_KEYS"]
    ]
    assert copies == [DETECT_KEYS]


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
