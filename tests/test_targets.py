import pytest
import torch

from modelgif.field.targets import check_target, target_selector


def test_target_1_selects_each_channels_spatial_maximum():
    out = torch.randn(2, 3, 4, 5)
    sel = target_selector(out, 1)
    for b in range(2):
        for c in range(3):
            assert sel[b, c].sum() == 1
            assert out[b, c][sel[b, c].bool()].item() == out[b, c].max().item()


def test_target_5_selects_each_positions_channel_maximum():
    out = torch.randn(2, 6, 3, 3)
    sel = target_selector(out, 5)
    assert torch.equal(sel.sum(1), torch.ones(2, 3, 3))
    picked = (out * sel).sum(1)
    assert torch.equal(picked, out.max(1).values)


def test_target_6_selects_everything():
    out = torch.randn(1, 2, 2, 2)
    assert torch.equal(target_selector(out, 6), torch.ones_like(out))
    assert target_selector(out.double(), 6).dtype == torch.float64


@pytest.mark.parametrize("bad", [0, 2, 7, "max", 1.5, None, True])
def test_unknown_target_lists_valid_ones(bad):
    with pytest.raises(ValueError, match="valid targets: 1, 5, 6"):
        check_target(bad)


def test_string_target_from_command_line_accepted():
    assert check_target("5") == 5
