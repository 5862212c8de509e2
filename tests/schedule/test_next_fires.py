"""An independent check of `updraft launchplan next`: the same fire times computed
here with Python's own time zone database (zoneinfo) and a plain cron matcher,
for schedules across daylight saving changes in both hemispheres, half-hour
zones and leap days. EventBridge Scheduler's rule: a wall-clock time that does not
exist (spring forward) is skipped; one that happens twice (fall back) fires once,
at its first occurrence."""
import json
import os
import subprocess
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
UPDRAFT = os.path.join(TARGET, "debug", "updraft")

CASES = [
    ("0 3 * * *", "Europe/Paris", "2027-03-26T00:00:00Z", 5),
    ("30 2 * * *", "Europe/Paris", "2027-03-26T00:00:00Z", 5),
    ("30 2 * * *", "Europe/Paris", "2027-10-29T00:00:00Z", 5),
    ("*/30 1-3 * * *", "Europe/Paris", "2027-10-30T20:00:00Z", 12),
    ("30 2 * * *", "America/New_York", "2027-03-12T00:00:00Z", 5),
    ("30 1 * * *", "America/New_York", "2027-11-05T00:00:00Z", 5),
    ("0,15,30,45 1 * * *", "America/New_York", "2027-11-06T12:00:00Z", 10),
    ("0 9 * * 1-5", "America/New_York", "2027-03-10T00:00:00Z", 8),
    ("0 2 * * *", "Australia/Sydney", "2027-04-02T00:00:00Z", 4),
    ("30 2 * * 0", "Australia/Sydney", "2027-09-20T00:00:00Z", 3),
    ("45 23 * * *", "Asia/Kolkata", "2027-01-30T00:00:00Z", 4),
    ("0 12 29 2 *", "UTC", "2026-12-05T00:00:00Z", 2),
    ("0 0 1 * *", "Europe/London", "2027-01-15T00:00:00Z", 6),
    ("15 1 * * *", "Europe/London", "2027-10-30T00:00:00Z", 4),
    ("0 */6 * * *", "Pacific/Auckland", "2027-04-03T00:00:00Z", 8),
    ("30 2 * * *", "Pacific/Auckland", "2027-09-24T00:00:00Z", 4),
    ("0 0 * * 6,0", "Asia/Tokyo", "2027-02-25T00:00:00Z", 6),
    ("0 3 1,15 * *", "America/St_Johns", "2027-03-01T00:00:00Z", 4),
    ("0 2 * * *", "America/Santiago", "2027-04-01T00:00:00Z", 5),
    ("5 4 * 1,7 1", "Europe/Berlin", "2027-06-25T00:00:00Z", 5),
]


def values(field, low, high):
    """The values one cron field allows (numbers, ranges, lists, steps, *)."""
    allowed = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            start, end = low, high
        elif "-" in span:
            start, end = (int(v) for v in span.split("-"))
        else:
            start = end = int(span)
        allowed.update(range(start, end + 1, int(step or 1)))
    return allowed


def fires(expression, zone_name, after, count):
    minute, hour, dom, month, dow = expression.split()
    minutes, hours = sorted(values(minute, 0, 59)), sorted(values(hour, 0, 23))
    days, months = values(dom, 1, 31), values(month, 1, 12)
    weekdays = {d % 7 for d in values(dow, 0, 7)}
    zone = ZoneInfo(zone_name)
    start = datetime.fromisoformat(after.replace("Z", "+00:00"))
    day = start.astimezone(zone).date() - timedelta(days=1)
    found = []
    while len(found) < count:
        # Python's weekday(): Monday = 0; cron's: Sunday = 0.
        if day.day in days and day.month in months and (day.weekday() + 1) % 7 in weekdays:
            for h in hours:
                for m in minutes:
                    wall = datetime.combine(day, time(h, m), tzinfo=zone)  # fold=0: the first of two
                    instant = wall.astimezone(timezone.utc)
                    if instant.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
                        continue  # in a spring-forward gap: it does not exist
                    if instant > start and len(found) < count:
                        found.append(instant.strftime("%Y-%m-%dT%H:%M:%SZ"))
        day += timedelta(days=1)
    return found


@pytest.mark.parametrize("expression,zone,after,count", CASES)
def test_updraft_computes_the_fire_times_zoneinfo_computes(expression, zone, after, count, tmp_path):
    spec = tmp_path / "plan.yaml"
    spec.write_text(
        "tasks:\n  t: {image: x, command: [t]}\nworkflows:\n  w:\n    nodes:\n      t: {task: t}\n"
        f"launch_plans:\n  p: {{workflow: w, schedule: {{cron: \"{expression}\", timezone: {zone}}}}}\n"
    )
    answer = subprocess.run([UPDRAFT, "launchplan", "next", str(spec), "-n", str(count), "--after", after,
                             "--output", "json"], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    got = [f["utc"] for f in json.loads(answer.stdout)["fires"]]
    assert got == fires(expression, zone, after, count)


def test_the_cases_cover_both_clock_changes_in_both_hemispheres():
    assert len(CASES) >= 20
    # A case where the spring gap removes a fire, and one where the fall overlap would repeat it.
    paris_spring = fires("30 2 * * *", "Europe/Paris", "2027-03-26T00:00:00Z", 5)
    assert "2027-03-28T00:30:00Z" not in paris_spring and "2027-03-28T01:30:00Z" not in paris_spring
    new_york_fall = fires("30 1 * * *", "America/New_York", "2027-11-05T00:00:00Z", 5)
    assert sum(1 for t in new_york_fall if t.startswith("2027-11-07")) == 1
    assert date(2028, 2, 29).isoformat() in fires("0 12 29 2 *", "UTC", "2026-12-05T00:00:00Z", 1)[0]
