"""`segue presets` and `--preset NAME` on generate, continue and continue-track."""

import pytest

from bridge.cli import build_parser, main
from bridge.cli.continue_track import _options
from bridge.cli.generate import _request
from bridge.cli.presets import apply_preset
from bridge.presets import load_presets, save_user_preset


def test_presets_lists_every_builtin_with_its_length_and_tempo(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(load_presets().presets) > 10
    line = next(line for line in out.splitlines() if line.startswith("lofi-hip-hop-drums"))
    assert "4 bars 4/4, 70-95 BPM: Lo-fi hip-hop drums" in line
    assert main(["presets", "--tag", "drums"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [preset.id for preset in load_presets().with_tag("drums")] and "lofi-hip-hop-drums" in listed


def test_a_users_preset_is_listed_as_theirs(capsys):
    preset = load_presets().get("lofi-hip-hop-drums")
    save_user_preset(preset.__class__(name="My dusty drums", prompt="dusty drums"), "my-dusty-drums")
    assert main(["presets"]) == 0
    assert "my-dusty-drums" in capsys.readouterr().out.split("(yours)")[0].splitlines()[-1]


def test_generate_with_a_preset_takes_its_prompt_length_tempo_and_settings():
    args = build_parser().parse_args(["generate", "--preset", "lofi-hip-hop-drums", "--model", "tiny"])
    request = _request(args)
    preset = load_presets().get("lofi-hip-hop-drums")
    assert request.prompt == preset.prompt
    assert (request.bars, request.bpm, request.signature) == (4, 82, "4/4")  # 82: the middle of 70-95
    assert (request.cfg, request.temperature) == (3.5, 0.95)


def test_options_given_on_the_command_line_win_over_the_preset():
    argv = ["generate", "more swing", "--preset", "lofi-hip-hop-drums", "--model", "tiny",
            "--seconds", "5", "--cfg", "5", "--temperature", "0.7"]
    request = _request(build_parser().parse_args(argv))
    assert request.prompt.endswith(", more swing") and request.seconds == 5 and request.bars is None
    assert (request.cfg, request.temperature) == (5, 0.7)


def test_continue_track_with_a_preset_takes_its_words_and_sound_settings():
    args = build_parser().parse_args(["continue-track", "strings enter", "--preset", "lofi-hip-hop-drums"])
    preset = apply_preset(args, lengths=False)
    assert args.prompt.endswith(", strings enter") and preset.guidance == 3.5
    assert _options(args).bars == 4


@pytest.mark.parametrize("command", ["generate", "continue"])
def test_an_unknown_preset_is_one_line_naming_the_known_ones(command, write_tone, capsys):
    source = [str(write_tone("loop.wav", 1.0, 32000))] if command == "continue" else []
    assert main([command, *source, "--preset", "no-such-preset", "--model", "tiny", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no preset called 'no-such-preset'; known presets: " in err


def test_generate_without_prompt_or_preset_says_what_is_missing(capsys):
    assert main(["generate", "--model", "tiny", "--seconds", "1"]) == 2
    assert "a prompt, or --preset NAME" in capsys.readouterr().err
