"""The plot renders from run data, with the knee marked."""

from __future__ import annotations

from pathlib import Path

from loadtests.config import StepProfile, Traffic
from loadtests.phases import plan
from loadtests.plot import Band, PlotInput, render


def test_plot_renders_a_png(tmp_path: Path):
    profile = StepProfile(
        shape="step", description="", start_rps=10, step_rps=10, steps=3,
        step_s=20, settle_s=5, spawn_s=2,
    )  # fmt: skip
    phases = plan(profile, Traffic(think_time_s=(0.5, 1.5), logged_in_share=0.25))
    timeline = [
        {"elapsed_s": float(t), "users": 10 + t // 20 * 10, "p50_ms": 10, "p95_ms": 40 + t,
         "p99_ms": 80 + 2 * t, "generator_cpu_pct": 10.0, "target_cpu_pct": 50.0 + t,
         "machine_cpu_pct": 60.0, "db_pool_used_share": 0.1}
        for t in range(0, 60, 2)
    ]  # fmt: skip
    data = PlotInput(
        title="step against http://127.0.0.1:8000: PASS",
        requests_per_s={s: 10 + s // 20 * 10 for s in range(60)},
        failures_per_s={55: 2},
        timeline=timeline,
        phases=phases,
        p95_limit_ms=500,
        p99_limit_ms=1000,
        bands=[
            Band(5, 20, True, "step 1"),
            Band(25, 40, True, "step 2"),
            Band(45, 60, False, "step 3"),
        ],
        knee=("step 2", 19.5),
    )
    path = render(data, tmp_path / "out" / "plot.png")
    content = path.read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(content) > 20_000
