"""Knee detection, the resource that ran out, and the capacity report."""

from __future__ import annotations

from loadtests.capacity import Resources, WindowStats, find_knee, limiting_resource, render_markdown
from loadtests.gates import Thresholds

LIMITS = Thresholds(error_ratio=0.001, p95_ms=500, p99_ms=1000)


def step(
    n: int,
    rps: float,
    p95: float,
    *,
    p99: float | None = None,
    failures: int = 0,
    achieved: float | None = None,
    resources: Resources | None = None,
) -> WindowStats:
    achieved = rps if achieved is None else achieved
    return WindowStats(
        label=f"step {n}",
        offered_rps=rps,
        users=int(rps),
        seconds=40,
        requests=int(achieved * 40),
        failures=failures,
        achieved_rps=achieved,
        p50_ms=p95 / 3,
        p95_ms=p95,
        p99_ms=p95 * 1.5 if p99 is None else p99,
        resources=resources or Resources(),
        step_index=n - 1,
    )


def test_knee_is_the_last_step_before_the_first_breach():
    steps = [step(1, 10, 50), step(2, 20, 80), step(3, 30, 200), step(4, 40, 900), step(5, 50, 90)]
    report = find_knee(steps, LIMITS, 0.8, peak_rps=25)
    assert report.knee is steps[2]
    assert report.knee_rps == 30
    assert report.broke_at is steps[3]
    # step 5 held again (noise), but a shop that broke at 40 does not hold 50
    assert report.headroom is not None and round(report.headroom, 2) == 0.2


def test_errors_and_lost_throughput_break_a_step_too():
    erroring = step(2, 20, 80, failures=5)  # 5 / 800 > 0.1 %
    report = find_knee([step(1, 10, 50), erroring], LIMITS, 0.8, peak_rps=40)
    assert report.knee_rps == 10
    assert "error ratio" in report.steps[1].breaches[0]
    starved = step(2, 20, 80, achieved=12)  # closed loop: latency ate the throughput
    report = find_knee([step(1, 10, 50), starved], LIMITS, 0.8, peak_rps=40)
    assert report.broke_at is starved
    assert "throughput" in report.steps[1].breaches[0]
    assert report.headroom is not None and report.headroom < 0


def test_no_break_means_capacity_is_at_least_the_last_step():
    steps = [step(1, 10, 50), step(2, 20, 60)]
    report = find_knee(steps, LIMITS, 0.8, peak_rps=15)
    assert report.knee is steps[1]
    assert report.broke_at is None
    assert report.limiting_resource.startswith("not reached")


def test_no_step_held():
    report = find_knee([step(1, 10, 800)], LIMITS, 0.8, peak_rps=15)
    assert report.knee is None and report.knee_rps is None and report.headroom is None
    text = render_markdown(report, target="http://127.0.0.1:8000", generated_at="now")
    assert "Knee: none" in text


def test_the_resource_that_ran_out():
    generator = step(1, 10, 900, resources=Resources(generator_cpu_pct=97, machine_cpu_pct=99))
    assert limiting_resource(generator).startswith("load generator CPU")
    machine = step(
        1,
        10,
        900,
        resources=Resources(
            generator_cpu_pct=40, machine_cpu_pct=96, target_cpu_pct=150, target_cpu_cores=2
        ),
    )
    assert limiting_resource(machine).startswith("CPU of this machine")
    assert "shared by the shop and the load generator" in limiting_resource(machine)
    noisy = step(
        1, 10, 900,
        resources=Resources(generator_cpu_pct=5, machine_cpu_pct=95, target_cpu_pct=20,
                            target_cpu_cores=2),
    )  # fmt: skip
    assert "mostly taken by other processes (165% of a core" in limiting_resource(noisy)
    target = step(
        1,
        10,
        900,
        resources=Resources(
            target_cpu_pct=390, target_cpu_cores=4, target_cpu_source="processes on port 8000"
        ),
    )
    assert limiting_resource(target).startswith("target CPU")
    pool = step(
        1,
        10,
        900,
        resources=Resources(target_cpu_pct=50, target_cpu_cores=4, db_pool_used_share=1.0),
    )
    assert limiting_resource(pool).startswith("database connection pool")
    calm = step(1, 10, 900, resources=Resources(target_cpu_pct=50, target_cpu_cores=4))
    assert limiting_resource(calm).startswith("unknown: none of the measured")
    assert limiting_resource(step(1, 10, 900)).startswith("unknown (no resource")


def test_report_names_the_knee_resource_and_headroom():
    steps = [
        step(1, 10, 50),
        step(2, 20, 80),
        step(
            3,
            30,
            900,
            resources=Resources(
                generator_cpu_pct=30, machine_cpu_pct=98, target_cpu_pct=160, target_cpu_cores=2
            ),
        ),
    ]
    report = find_knee(steps, LIMITS, 0.8, peak_rps=16)
    text = render_markdown(report, target="http://127.0.0.1:8000", generated_at="now")
    assert "**Knee: 20.0 rps**" in text
    assert "Broke at step 3: p95 900 ms > 500 ms" in text
    assert "Resource that ran out: CPU of this machine" in text
    assert "+25%" in text and "the peak is covered" in text
    assert text.count("| step ") == 4  # header + three steps
    as_dict = report.as_dict()
    assert as_dict["knee_rps"] == 20 and as_dict["broke_at_step"] == "step 3"
