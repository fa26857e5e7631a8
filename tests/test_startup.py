"""What a console script answers from its command line alone (`--help`, `--cfg job`, a typo)
it answers in a fresh process without importing torch or Lightning."""

import json
import subprocess
import sys

import pytest

# Each case runs `seglab.cli.<module>.main()` in a fresh interpreter; the last line of its
# stdout says how it exited and which heavy libraries it had imported by then.
PROBE = """
import importlib, json, sys
module, *arguments = sys.argv[1:]
sys.argv = [f"seglab-{module.replace('_', '-')}", *arguments]
try:
    importlib.import_module(f"seglab.cli.{module}").main()
    code = 0
except SystemExit as done:
    code = done.code
heavy = ("torch", "lightning", "segmentation_models_pytorch", "timm", "albumentations", "cv2",
         "matplotlib", "pandas")
print(json.dumps({"code": code, "imported": [name for name in heavy if name in sys.modules]}))
"""
SCRIPTS = ["train", "eval", "predict", "export", "check_data"]


def run_entry(module: str, *arguments: str, cwd) -> tuple[int, list[str], str, str]:
    """(exit code, heavy libraries imported, stdout before the probe's line, stderr)."""
    done = subprocess.run([sys.executable, "-c", PROBE, module, *arguments], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    *output, last = done.stdout.rstrip("\n").split("\n")
    probe = json.loads(last)
    return probe["code"], probe["imported"], "\n".join(output), done.stderr


@pytest.mark.parametrize("module", SCRIPTS)
def test_help_answers_without_torch(module, tmp_path):
    code, imported, out, err = run_entry(module, "--help", cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert f"{module} is powered by Hydra." in out
    assert "model: deeplabv3, deeplabv3plus, dpt, fcn" in out  # the config groups, their choices
    assert imported == []


def test_hydra_help_answers_without_torch(tmp_path):
    code, imported, out, err = run_entry("train", "--hydra-help", cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert "Hydra (" in out and "hydra/launcher:" in out
    assert imported == []


@pytest.mark.parametrize("module, argument, message", [
    ("train", "model=unett", "error: unknown model 'unett' in 'model=unett'; valid choices for "
                             "model: deeplabv3, deeplabv3plus, dpt, fcn, fcn8s,"),
    ("eval", "data=vocc", "error: unknown data 'vocc' in 'data=vocc'; valid choices for data: "
                          "ade20k, art, bdd, camvid, cityscapes, coco,"),
    ("check_data", "data=vocc", "error: unknown data 'vocc'"),
    ("predict", "logger=[csv,tensorbord]", "error: unknown logger 'tensorbord' in "
                                           "'logger=[csv,tensorbord]'"),
    ("export", "logger.wandb.api_key=abcdef", "error: refusing the override "
                                              "logger.wandb.api_key: an API key would be saved"),
])
def test_a_command_line_mistake_is_one_line_without_torch(module, argument, message, tmp_path):
    code, imported, out, err = run_entry(module, argument, cwd=tmp_path)
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1, err[-2000:]
    assert "abcdef" not in err
    assert imported == []


def test_an_output_folder_under_a_file_is_one_line_without_torch(tmp_path):
    (tmp_path / "a-file").write_text("")
    code, imported, _, err = run_entry("train", f"hydra.run.dir={tmp_path}/a-file/run",
                                       cwd=tmp_path)
    assert code == 2
    assert err == f"error: hydra.run.dir: cannot create {tmp_path}/a-file/run: " \
                  f"{tmp_path}/a-file is a file, not a folder\n"
    assert imported == []


def test_cfg_job_prints_the_composed_config_without_torch(tmp_path):
    code, imported, out, err = run_entry("train", "--cfg", "job", cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert "\nmodel:\n" in out and "  name: unet\n" in out
    assert "${auto_precision:${trainer.accelerator}}" in out  # unresolved: no torch needed
    assert imported == []
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_resolve_uses_seglab_resolvers(tmp_path):
    code, _, out, err = run_entry("train", "--cfg", "job", "--resolve", "trainer.accelerator=cpu",
                                  cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert "\n  precision: 32-true\n" in out or "\n  precision: bf16-mixed\n" in out


def test_import_seglab_is_cheap():
    done = subprocess.run([sys.executable, "-c", "import seglab, seglab.runs.config, "
                           "seglab.runs.resume, seglab.runs.header, seglab.runs.results, "
                           "seglab.cli.arguments, sys; print(sorted({'torch', 'lightning', "
                           "'numpy'} & set(sys.modules)))"],
                          capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]"
