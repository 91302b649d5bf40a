"""`bisenet-export checkpoint`: a CoinCheung .pth becomes a self-describing .safetensors that
loads alone and gives the same outputs."""

import pytest
import torch

from bisenet_deploy.checkpoint import load_model
from bisenet_deploy.cli.export_main import main
from test_checkpoint_coincheung import synthetic_state_dict


def test_coincheung_pth_converts_to_safetensors_with_the_same_outputs(tmp_path, capsys,
                                                                      monkeypatch):
    pth = tmp_path / "model_final_v2_city.pth"
    torch.save({"state_dict": synthetic_state_dict()}, str(pth))
    monkeypatch.chdir(tmp_path)
    assert main(["checkpoint", "--checkpoint", str(pth), "-q"]) == 0
    out = tmp_path / "models" / "bisenetv2-coincheung-cityscapes.safetensors"
    assert "wrote models/bisenetv2-coincheung-cityscapes.safetensors" in capsys.readouterr().out
    original, converted = load_model(str(pth)), load_model(str(out))
    assert converted.metadata.arch == "bisenetv2-coincheung"
    assert converted.metadata.dataset == "cityscapes" and converted.metadata.num_classes == 19
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(original.model(x), converted.model(x))


def test_existing_output_and_bad_paths_are_refused(tmp_path, capsys):
    pth = tmp_path / "m.pth"
    torch.save(synthetic_state_dict(), str(pth))
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"keep me")
    assert main(["checkpoint", "--checkpoint", str(pth), "-o", str(out), "-q"]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["checkpoint", "--checkpoint", str(pth), "-o", str(tmp_path / "m.pt"), "-q"]) == 2
    assert ".safetensors" in capsys.readouterr().err
    # --force replaces only a .safetensors this tool wrote: "keep me" is no such file
    assert main(["checkpoint", "--checkpoint", str(pth), "-o", str(out), "--force", "-q"]) == 2
    assert "refusing to replace" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    out.unlink()
    assert main(["checkpoint", "--checkpoint", str(pth), "-o", str(out), "-q"]) == 0
    assert main(["checkpoint", "--checkpoint", str(pth), "-o", str(out), "--force", "-q"]) == 0
    assert load_model(str(out)).metadata.num_classes == 19
    with pytest.raises(SystemExit) as exc:  # --checkpoint is required: an argparse usage error
        main(["checkpoint", "-q"])
    assert exc.value.code == 2
