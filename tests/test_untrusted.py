"""Files from strangers: weights through spandrel, ``local-dir:`` folders, `load_weights`, videos.

A small file must never make msrnet allocate gigabytes. Every case here that could allocate
runs in a child process whose address space is capped (``resource.setrlimit(RLIMIT_AS)``) at
what it had after its imports plus `BUDGET`: a loader that tries to allocate more fails the
test with a MemoryError (or dies) in the child, instead of taking the machine's memory.

The fuzz tests run hypothesis inside such a child, with few examples each, so that each test
takes seconds; what they check is that every input ends in a result or in the loader's
documented error, never in another exception or an allocation past the cap.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _extras import needs_extra  # tests/_extras.py

import msrnet
from msrnet.models.msr import CONFIG_BUFFER

REPO = Path(__file__).resolve().parents[1]
# Address space a capped child may add to what its imports took.
BUDGET = 1536 << 20

# Run first in every child: imports, one thread, then the cap on the address space.
PRELUDE = """
import json, os, resource, sys, warnings
from pathlib import Path
import torch
torch.set_num_threads(1)
import msrnet
from msrnet.models.msr import CONFIG_BUFFER

def _vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")

def cap():
    limit = _vm_size() + int(os.environ["MSRNET_TEST_BUDGET"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

def config_tensor(**settings):
    base = {"level_scales": [2, 4], "projection_kernel": None, "act_layer": "relu", "image_upsample": "bicubic"}
    data = json.dumps({**base, **settings}, sort_keys=True).encode()
    return torch.tensor(list(data), dtype=torch.float32)
"""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")


def run_capped(body: str, tmp_path: Path, *imports: str) -> str:
    """Run ``body`` (after `PRELUDE`, ``imports`` and ``cap()``) in a child; its stdout."""
    code = PRELUDE + "\n".join(imports) + "\ncap()\n" + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MSRNET_TEST_BUDGET": str(BUDGET),
           "MSRNET_TESTS": str(REPO / "tests")}
    env.pop("CI", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_the_cap_catches_a_large_allocation(tmp_path: Path) -> None:
    """The harness itself: an allocation past the budget fails inside the child."""
    out = run_capped(
        """
        try:
            torch.ones(int(os.environ["MSRNET_TEST_BUDGET"]) // 4 + (1 << 28))
            print("allocated")
        except (MemoryError, RuntimeError):
            print("refused")
        """,
        tmp_path,
    )
    assert out.strip() == "refused"


# --- 4. spandrel: the stored config against the tensors ----------------------------------------
def test_spandrel_refuses_a_config_or_stem_that_disagrees_with_the_tensors(tmp_path: Path) -> None:
    # The cases, as written: a 1.6 MB file (msr_small_x4) whose msrnet_config says
    # level_scales [2, 1024] or [2, 4096], or projection_kernel 100000, or whose stem weight
    # is (64, 3, 1, 151).
    needs_extra("spandrel")
    out = run_capped(
        """
        import spandrel
        from safetensors.torch import save_file
        from msrnet.integrations import spandrel as msr_spandrel
        msr_spandrel.install()
        sd = {k: v.contiguous() for k, v in msrnet.create_model("msr_small_x4").state_dict().items()}
        cases = {
            "scales_1024": {**sd, CONFIG_BUFFER: config_tensor(level_scales=[2, 1024])},
            "scales_4096": {**sd, CONFIG_BUFFER: config_tensor(level_scales=[2, 4096])},
            "kernel_100000": {**sd, CONFIG_BUFFER: config_tensor(projection_kernel=100000)},
            "stem_1x151": {**sd, "stem.layers.0.weight": torch.zeros(64, 3, 1, 151)},
        }
        for name, state in cases.items():
            save_file(state, name + ".safetensors")
            assert os.path.getsize(name + ".safetensors") < 2 << 20
            try:
                spandrel.ModelLoader().load_from_file(name + ".safetensors")
                print(name, "loaded")
            except ValueError as e:
                print(name, "ValueError", e)
        """,
        tmp_path,
    )
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(" ValueError " in line and "does not match" in line for line in lines), out


def test_spandrel_still_loads_what_msrnet_writes(tmp_path: Path) -> None:
    spandrel = needs_extra("spandrel")
    from msrnet.integrations import spandrel as msr_spandrel

    msr_spandrel.install()
    model = msrnet.create_model("msr_small_x4")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "m.safetensors")
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / "m.safetensors")
    assert descriptor.scale == 4


# --- 9. model_kwargs_from_state_dict: ValueError, nothing else ---------------------------------
def _tiny_state() -> dict[str, torch.Tensor]:
    model = msrnet.create_model("msr_x4", stem_widths=(8, 8), num_blocks=3, se_ratio=0.25)
    return dict(model.state_dict())


MALFORMED = {
    # IndexError before: a 0-d stem weight has no shape[1].
    "0-d stem weight": lambda sd: {**sd, "stem.layers.0.weight": torch.tensor(1.0)},
    # KeyError before: the stem's second conv is layer 2, here only layer 4 exists.
    "gap in the stem": lambda sd: {
        ("stem.layers.4.weight" if k == "stem.layers.2.weight" else k): v for k, v in sd.items()
    },
    # KeyError before: without the config buffer, the up-projection of block 0 is read.
    "no block 0": lambda sd: {
        k: v for k, v in sd.items() if k != CONFIG_BUFFER and not k.startswith("levels.0.blocks.0.")
    },
    # TypeError before: a value that is not a tensor.
    "a list as a tensor": lambda sd: {**sd, "levels.0.to_residual.weight": [1, 2, 3]},
    "config not JSON": lambda sd: {**sd, CONFIG_BUFFER: torch.tensor([255.0, 0.0, 1.0])},
    "config a list": lambda sd: {**sd, CONFIG_BUFFER: torch.tensor([float(b) for b in b"[1, 2]"])},
    "config without level_scales": lambda sd: {**sd, CONFIG_BUFFER: torch.tensor([float(b) for b in b"{}"])},
    "config scales are strings": lambda sd: {
        **sd, CONFIG_BUFFER: torch.tensor([float(b) for b in json.dumps({
            "level_scales": ["2", "4"], "projection_kernel": None, "act_layer": "relu",
            "image_upsample": "bicubic"}).encode()])
    },
    "2-d config": lambda sd: {**sd, CONFIG_BUFFER: sd[CONFIG_BUFFER][None]},
    "fc1 is 1-d": lambda sd: {**sd, "levels.0.blocks.0.attn.fc1.weight": torch.zeros(3)},
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_model_kwargs_from_a_malformed_state_dict_is_a_value_error(case: str) -> None:
    needs_extra("spandrel")
    from msrnet.integrations.spandrel import model_kwargs_from_state_dict

    with pytest.raises(ValueError):
        model_kwargs_from_state_dict(MALFORMED[case](_tiny_state()))


# --- 5. local-dir: config.json builds nothing over the limits ----------------------------------
def test_local_dir_config_cannot_ask_for_gigabytes(tmp_path: Path) -> None:
    # The cases: config.json saying stem_widths [200000000, 32] (21.6 GB asked) or
    # num_blocks 1e9 (grew until killed), and the same count as a JSON integer.
    cases = [{"stem_widths": [200000000, 32]}, {"num_blocks": 1e9}, {"num_blocks": 10**9}]
    out = run_capped(
        f"""
        import timm
        from msrnet.hub import save_pretrained
        save_pretrained(msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2, se_ratio=0), "F")
        original = json.loads(Path("F/config.json").read_text())
        for args in {cases!r}:
            config = json.loads(json.dumps(original))
            config["model_args"].update(args)
            Path("F/config.json").write_text(json.dumps(config))
            try:
                timm.create_model("local-dir:F", pretrained=True)
                print("built")
            except ValueError as e:
                print("ValueError", e)
        """,
        tmp_path,
    )
    lines = out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("ValueError") for line in lines), out
    assert "MAX_MODEL_BYTES" in lines[0] and "num_blocks must be an integer" in lines[1]
    assert "MAX_LAYERS" in lines[2]


def test_the_limits_can_be_raised_and_lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    from msrnet.models import ModelSizeError, model_limits, model_size

    monkeypatch.setenv("MSRNET_MAX_MODEL_BYTES", "1000")
    with pytest.raises(ModelSizeError, match="MSRNET_MAX_MODEL_BYTES"):
        msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2)
    monkeypatch.delenv("MSRNET_MAX_MODEL_BYTES")
    monkeypatch.setenv("MSRNET_MAX_LAYERS", "20")
    with pytest.raises(ModelSizeError, match="layers"):
        msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2)
    monkeypatch.delenv("MSRNET_MAX_LAYERS")
    monkeypatch.setenv("MSRNET_MAX_ACTIVATION_BYTES", str(1 << 30))
    assert msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2).scale == 2
    # The shipped networks fit the defaults with room to spare.
    monkeypatch.delenv("MSRNET_MAX_ACTIVATION_BYTES")
    with torch.device("meta"):
        size = model_size(msrnet.create_model("msr_x8"))
    limits = model_limits()
    assert all(size[k] * 10 < limits[k] for k in limits), size


# --- 6. a PNG bomb under a video name --------------------------------------------------------
def test_a_745_kb_16000x16000_png_named_mp4_is_refused_like_the_png(tmp_path: Path) -> None:
    needs_extra("av")
    out = run_capped(
        """
        import struct, zlib
        from msrnet.cli import main

        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        # 16000 rows of 16000 black RGB pixels, deflated as they go: 746 KB on disk.
        side, deflate = 16000, zlib.compressobj(6)
        rows = b"".join(deflate.compress(b"\\0" * (1 + 3 * side) * 100) for _ in range(side // 100))
        png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", rows + deflate.flush()) + chunk(b"IEND", b""))
        for name in ("bomb.mp4", "bomb.png"):
            Path(name).write_bytes(png)
            out = "out" + Path(name).suffix
            code = main(["upscale", name, "-o", out, "--model", "msr_x2", "--no-pretrained", "--tile", "64"])
            print(name, code, Path(out).exists(), os.path.getsize(name))
        """,
        tmp_path,
    )
    assert out.split() == ["bomb.mp4", "1", "False", "746544", "bomb.png", "1", "False", "746544"], out


# --- fuzz: the loaders of strangers' files, under the cap --------------------------------------
FUZZ = """
from hypothesis import HealthCheck, given, settings, strategies as st
SETTINGS = settings(max_examples=int(os.environ.get("MSRNET_FUZZ_EXAMPLES", "25")), deadline=None,
                    derandomize=True, suppress_health_check=list(HealthCheck), database=None)
big = st.one_of(st.integers(-3, 9), st.integers(10, 10**12), st.floats(allow_nan=True), st.none(),
                st.text(max_size=5), st.booleans(), st.lists(st.integers(-2, 10**9), max_size=4))
"""


@pytest.mark.slow
def test_fuzz_spandrel_load(tmp_path: Path) -> None:
    needs_extra("spandrel")
    out = run_capped(
        """
        from msrnet.integrations.spandrel import MSRNetArch
        base = {k: v.contiguous() for k, v in
                msrnet.create_model("msr_x4", stem_widths=(8, 8), num_blocks=3).state_dict().items()}
        keys = sorted(base)

        @SETTINGS
        @given(
            settings_=st.dictionaries(st.sampled_from(["level_scales", "projection_kernel", "act_layer",
                                                       "image_upsample"]), big, max_size=3),
            reshape=st.lists(st.tuples(st.sampled_from(keys),
                                       st.lists(st.integers(0, 300), min_size=0, max_size=4)), max_size=2),
            drop=st.lists(st.sampled_from(keys), max_size=2),
        )
        def check(settings_, reshape, drop):
            sd = dict(base)
            if settings_:
                sd[CONFIG_BUFFER] = config_tensor(**settings_)
            for key, shape in reshape:
                if torch.Size(shape).numel() <= 1 << 16:
                    sd[key] = torch.zeros(shape)
            for key in drop:
                sd.pop(key, None)
            try:
                MSRNetArch().load(sd)
            except ValueError:
                pass

        check()
        print("ok")
        """,
        tmp_path, FUZZ,
    )
    assert out.strip() == "ok"


@pytest.mark.slow
def test_fuzz_local_dir_folders(tmp_path: Path) -> None:
    out = run_capped(
        """
        import timm
        from msrnet.hub import save_pretrained
        save_pretrained(msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2, se_ratio=0), "F")
        original = json.loads(Path("F/config.json").read_text())
        names = ["scale", "stem_widths", "num_blocks", "blocks_per_level", "level_chans", "level_scales",
                 "projection_kernel", "refine_convs", "kernel_size", "se_ratio", "in_chans", "out_chans"]

        @SETTINGS
        @given(args=st.dictionaries(st.sampled_from(names), big, max_size=3))
        def check(args):
            config = json.loads(json.dumps(original))
            config["model_args"].update(args)
            Path("F/config.json").write_text(json.dumps(config))
            try:
                timm.create_model("local-dir:F", pretrained=True)
            except (ValueError, TypeError, RuntimeError):
                pass  # a bad value, an unknown keyword, or weights that do not fit

        check()
        print("ok")
        """,
        tmp_path, FUZZ,
    )
    assert out.strip() == "ok"


@pytest.mark.slow
def test_fuzz_load_weights(tmp_path: Path) -> None:
    out = run_capped(
        """
        from safetensors.torch import save_file
        from msrnet.models.weights import WeightsError, load_weights
        base = {k: v.contiguous() for k, v in
                msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2).state_dict().items()}
        keys = sorted(base)

        @SETTINGS
        @given(
            arch=st.sampled_from(["msr_x2", "msr_x4", "msr_x8", "msr_small_x2", "nonesuch", ""]),
            kwargs=st.one_of(st.dictionaries(st.sampled_from(["stem_widths", "num_blocks", "level_scales",
                                                              "projection_kernel", "kernel_size", "scale"]),
                                             big, max_size=3).map(json.dumps),
                             st.text(max_size=10)),
            scale=st.one_of(st.text(max_size=4), st.integers(-5, 10**6).map(str)),
            reshape=st.lists(st.tuples(st.sampled_from(keys), st.lists(st.integers(0, 64), max_size=4)),
                             max_size=2),
            raw=st.binary(max_size=64),
        )
        def check(arch, kwargs, scale, reshape, raw):
            sd = dict(base)
            for key, shape in reshape:
                sd[key] = torch.zeros(shape)
            save_file(sd, "w.safetensors", metadata={"arch": arch, "model_kwargs": kwargs, "scale": scale})
            Path("junk.safetensors").write_bytes(raw)
            Path("junk.pth").write_bytes(raw)
            for path in ("w.safetensors", "junk.safetensors", "junk.pth"):
                try:
                    load_weights(path)
                except WeightsError:
                    pass

        check()
        print("ok")
        """,
        tmp_path, FUZZ,
    )
    assert out.strip() == "ok"


@pytest.mark.slow
def test_fuzz_video_probing(tmp_path: Path) -> None:
    needs_extra("av")
    out = run_capped(
        """
        sys.path.insert(0, os.environ["MSRNET_TESTS"])
        from test_video import make_clip
        from msrnet.video import VideoError, VideoWarning, upscale_video
        model = msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2, se_ratio=0).eval()
        clips = {ext: make_clip(Path("clip" + ext), frames=4, size=(16, 16)).read_bytes() for ext in (".mp4", ".mkv")}

        @SETTINGS
        @given(
            ext=st.sampled_from([".mp4", ".mkv"]),
            cut=st.floats(0, 1),
            flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
            junk=st.booleans(),
            raw=st.binary(max_size=256),
        )
        def check(ext, cut, flips, junk, raw):
            data = bytearray(raw if junk else clips[ext])
            for where, value in flips:
                if data:
                    data[int(where * (len(data) - 1))] = value
            src = Path("in" + ext)
            src.write_bytes(bytes(data[: max(1, int(len(data) * cut))] if not junk else data))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VideoWarning)
                try:
                    upscale_video(model, src, Path("out.mkv"), codec="ffv1", tile=None, progress=False)
                except (VideoError, ValueError):
                    pass
            assert not [p for p in Path(".").iterdir() if ".tmp" in p.name]

        check()
        print("ok")
        """,
        tmp_path, FUZZ, "import av",
    )
    assert out.strip() == "ok"
