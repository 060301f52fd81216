"""``mm-eureka plot``: reading a run's metrics.jsonl (last line per step wins) and drawing it."""

import json
import logging

import pytest
from PIL import Image

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.plot import PlotError, plot_run, read_metrics


def line(step, kind, **metrics):
    return json.dumps({"step": step, "kind": kind, "time": 1700000000.0 + step, "metrics": metrics})


def write_run(run_dir):
    lines = [
        line(
            1,
            "train",
            reward=0.25,
            accuracy=0.2,
            format=1.0,
            response_length=310.0,
            policy_loss=0.5,
            ppo_clip_ratio=0.01,
            policy_drift=0.002,
            ppo_kl=0.001,
            actor_grad_norm=1.5,
            **{"timing/generation": 30.0, "timing/ppo_train": 12.0, "timing/step_total": 45.0},
        ),
        line(2, "train", reward=0.1, accuracy=0.1),
        line(0, "eval", eval_mathvista_pass1=0.4, eval_response_length_mean=280.0),
        # the run was resumed from step 1: its step 2 is written again and must replace the first
        line(2, "train", reward=0.5, accuracy=0.45, policy_clip_frac=0.03, actor_lr=1e-6),
        line(3, "train", reward=0.75),
        '{"step": 4, "kind": "train", "time": 1700000004.0, "metrics": {"rew',  # cut by a kill
    ]
    path = run_dir / "metrics.jsonl"
    path.write_text("\n".join(lines))
    return path


def test_read_metrics_last_line_per_step_wins_and_skips_a_cut_line(tmp_path, caplog):
    path = write_run(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mm_eureka_plugin.plot"):
        runs = read_metrics(path)
    assert runs["train"][2] == {"reward": 0.5, "accuracy": 0.45, "policy_clip_frac": 0.03, "actor_lr": 1e-6}
    assert runs["train"][3] == {"reward": 0.75}
    assert runs["train"][1]["timing/generation"] == 30.0
    assert runs["train"][1]["reward"] == 0.25
    assert list(runs["train"]) == [1, 2, 3]
    assert runs["eval"] == {0: {"eval_mathvista_pass1": 0.4, "eval_response_length_mean": 280.0}}
    assert set(runs) == {"train", "eval"}
    assert f"{path}:6" in caplog.text
    assert len(caplog.records) == 1


def test_plot_run_writes_a_png(tmp_path):
    write_run(tmp_path)
    out = plot_run(tmp_path)
    assert out == tmp_path / "metrics.png"
    assert out.stat().st_size > 0
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.width > 0 and image.height > 0


def test_plot_run_writes_a_named_out_file(tmp_path):
    write_run(tmp_path)
    out = plot_run(tmp_path, tmp_path / "plots" / "run.png")
    assert out == tmp_path / "plots" / "run.png"
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert not (tmp_path / "metrics.png").exists()


def test_cli_prints_the_png_path(tmp_path, capsys):
    write_run(tmp_path)
    target = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path), "--out", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    with Image.open(target) as image:
        assert image.format == "PNG"


def test_cli_on_an_empty_dir_exits_2_naming_the_file(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mm-eureka: error: ")
    assert str(tmp_path / "metrics.jsonl") in err


def test_cli_on_a_missing_dir_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["plot", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_a_file_of_garbage_lines_raises(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('not json\n{"step": 1, "kind": "train", "metrics": {"reward\n[1, 2]\n\n')
    assert issubclass(PlotError, ValueError)
    with pytest.raises(PlotError, match="no usable metrics line") as info:
        read_metrics(path)
    assert str(path) in str(info.value)
    with pytest.raises(PlotError):
        plot_run(tmp_path)


def test_an_empty_file_raises(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("")
    with pytest.raises(PlotError, match="empty"):
        read_metrics(path)


def test_a_run_with_none_of_the_plotted_metrics_raises(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(line(1, "train", actor_lr=1e-6) + "\n")
    with pytest.raises(PlotError, match="none of the plotted metrics"):
        plot_run(tmp_path)


def test_each_panel_draws_what_its_title_says_and_notes_a_loss_flat_at_zero_on_policy():
    from mm_eureka_plugin.plot import layout

    runs = {
        "train": {
            1: {"policy_loss": 0.0, "policy_clip_frac": 0.0, "ppo_clip_ratio": 0.0, "filter/kept": 8.0},
            2: {"policy_loss": -0.05, "policy_clip_frac": 0.1, "ppo_clip_ratio": 0.1, "filter/dropped_low": 3.0},
            3: {"policy_loss": 0.0, "reward": 0.5},
        },
        "eval": {10: {"eval_all_pass1": 0.75, "eval_red_pass1": 0.0, "eval_blue_pass1": 1.0}},
    }
    drawn = {panel.title: (lines, note) for panel, lines, note in layout(runs)}
    loss_lines, loss_note = drawn["Policy loss (value)"]
    assert loss_lines == [("policy_loss", [1, 2, 3], [0.0, -0.05, 0.0])]
    assert loss_note.startswith("0 on 2 of 3 steps: on-policy")
    clip_lines, _ = drawn["Clip fraction"]
    assert [label for label, *_ in clip_lines] == ["policy_clip_frac"]  # one line for the one quantity
    eval_lines, _ = drawn["Eval pass@1 (greedy if eval temperature 0)"]
    assert [label for label, *_ in eval_lines] == ["all", "blue", "red"]
    filter_lines, _ = drawn["Accuracy filter"]
    assert [(label, steps) for label, steps, _ in filter_lines] == [
        ("kept", [1]),
        ("dropped: accuracy under range", [2]),
    ]
    runs["train"] = {1: {"policy_loss": 0.3}}
    (loss,) = [note for panel, _, note in layout(runs) if panel.title == "Policy loss (value)"]
    assert loss is None
