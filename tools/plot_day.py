#!/usr/bin/env python3
"""Draw a simulated day as a PNG: what a bench tester would rather look at than numbers.

  - bars: energy per quarter hour (Wh), the difference of two meter readings from the
    device's quarter-hour journal (TAF7); a gap is marked in red;
  - line: the power the meter emulator served (W, its log);
  - green band below: the relay's on periods, as high as the element's stage (how many
    of its relays the meter emulator saw on, its log's relays_on);
  - shaded: the transaction windows (begin to end of each transaction record), with
    their energy;
  - triangles: the TAF16 events, at the moment the device raised them;
  - orange band under the relay's: the grid operator's §14a limit in force (from
    its TAF16 events), with the limit in W.
Times on the axis are local (Europe/Berlin); the journals and logs hold UTC.

    tools/plot_day.py WORKDIR [--out day.png] [--date YYYY-MM-DD]
WORKDIR is a rig's work folder (make sim: sim-run/, the bench: bench-run/day).
From Python: plot_day.render(rig, "day.png"[, span_ms=(from_ms, to_ms)]).
"""
import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

QH_S = 900
EVENT_COLOURS = {"start": "#1a7f37", "stop": "#cf222e", "window_start": "#0969da", "window_end": "#8250df",
                 "dso": "#bc4c00"}


def limit_spans(events, end_ms):
    # [(from_ms, to_ms, text)] of the §14a limits in force, from the "dso" events
    # ("14a limit 0 W raised to the legal minimum 4200 W (contact)", "14a limit ended: ...").
    out, cur = [], None
    for e in sorted(events, key=lambda e: e["time_ms"]):
        if e.get("kind") != "dso":
            continue
        text = e.get("text") or ""
        if cur is not None:
            out.append((cur[0], e["time_ms"], cur[1]))
            cur = None
        if not text.startswith("14a limit ended"):
            words = text.split()
            w = words[words.index("minimum") + 1] if "minimum" in words else (words[2] if len(words) > 2 else "?")
            cur = (e["time_ms"], "§14a %s W" % w)
    if cur is not None:
        out.append((cur[0], end_ms, cur[1]))
    return out


def _tz():
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo("Europe/Berlin")
    except Exception:  # pragma: no cover - no tz database
        return datetime.timezone(datetime.timedelta(hours=1))


def load(workdir):
    """Everything the picture needs, from the rig's work folder."""
    from bench import qh_decode, qh_expand, read_journal_raw
    from dicamm.proto.ocmf import summary  # the OCMF transaction records
    data = os.path.join(workdir, "device", "data")

    def journal(name, decode):
        try:
            return [decode(p) for _, p in read_journal_raw(data, name)]
        except FileNotFoundError:
            return []
    power, relays = [], []
    try:
        with open(os.path.join(workdir, "meter.log")) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("power_w") is not None and not r.get("fault"):
                    power.append((r["t_ms"], r["power_w"]))
                k = r.get("relays_on")
                if k is not None and (not relays or relays[-1][1] != k):
                    relays.append((r["t_ms"], k))  # the stage's changes only
    except FileNotFoundError:
        pass
    return {"qh": qh_expand(journal("qh", qh_decode)), "events": journal("outbox", json.loads),
            "tx": journal("tx", summary), "power": power,
            "relays": relays}


def render(rig_or_workdir, png, date=None, title=None, span_ms=None):
    """span_ms=(from, to): draw only that stretch (the device may have run on past it)."""
    workdir = getattr(rig_or_workdir, "workdir", rig_or_workdir)
    d = load(workdir)
    if span_ms is not None:
        a, b = span_ms
        d["qh"] = [r for r in d["qh"] if a <= r["boundary"] * 1000 <= b]
        d["events"] = [e for e in d["events"] if a <= e["time_ms"] <= b]
        d["power"] = [p for p in d["power"] if a <= p[0] <= b]
        d["relays"] = [r for r in d["relays"] if r[0] <= b]
        d["tx"] = [t for t in d["tx"] if a <= ((t.get("begin") or {}).get("time_ms") or a) <= b]
    return render_data(d, png, date, title)


def render_data(d, png, date=None, title=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    tz = _tz()

    def when(ms):
        return datetime.datetime.fromtimestamp(ms / 1000, tz)

    qh = sorted(d["qh"], key=lambda r: r["boundary"])
    if date is None and qh:
        date = datetime.datetime.fromtimestamp(qh[len(qh) // 2]["boundary"], datetime.timezone.utc).strftime("%Y-%m-%d")
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(14, 6.5), sharex=True,
                                    gridspec_kw={"height_ratios": [6, 1], "hspace": 0.05})
    # energy per quarter hour: the interval ending at a boundary, from two readings
    xs, ys, gaps = [], [], []
    prev = None
    for r in qh:
        if "gap" in r:
            gaps.append(r["boundary"])
            prev = None
            continue
        if prev is not None and r["boundary"] - prev["boundary"] == QH_S:
            xs.append(when((r["boundary"] - QH_S) * 1000))
            ys.append(r["import_wh"] - prev["import_wh"])
        prev = r
    width = QH_S / 86400.0 * 0.9
    ax.bar(xs, ys, width=width, align="edge", color="#9ecae1", edgecolor="#4a90c2", linewidth=0.4,
           label="energy per quarter hour (Wh)", zorder=2)
    for b in gaps:
        ax.axvspan(when((b - QH_S) * 1000), when(b * 1000), color="#cf222e", alpha=0.25, lw=0, zorder=1)
    ax.set_ylabel("Wh per quarter hour")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    top = max(ys) if ys else 1
    # transactions shaded
    for t in d["tx"]:
        b, e = t.get("begin") or {}, t.get("end") or {}
        if b.get("time_ms") and e.get("time_ms"):
            ax.axvspan(when(b["time_ms"]), when(e["time_ms"]), color="#2da44e", alpha=0.12, lw=0, zorder=0)
            mid = when((b["time_ms"] + e["time_ms"]) // 2)
            ax.text(mid, top * 1.02, "#%s\n%s Wh" % (t.get("pg"), t.get("energy_wh")), ha="center", va="bottom",
                    fontsize=7, color="#1a7f37")
    # power line on its own axis
    pw = ax.twinx()
    if d["power"]:
        step = max(1, len(d["power"]) // 4000)
        pts = d["power"][::step]
        pw.plot([when(t) for t, _ in pts], [p for _, p in pts], color="#e36209", lw=0.8, label="power (W)")
    pw.set_ylabel("power W", color="#e36209")
    pw.tick_params(axis="y", colors="#e36209")
    pw.set_ylim(bottom=0)
    # TAF16 events as triangles along the top
    ev_y = top * 1.22
    seen = set()
    for e in d["events"]:
        k = e.get("kind", "event")
        y = ev_y if k in ("start", "stop") else ev_y * 0.93
        ax.plot([when(e["time_ms"])], [y], marker="v", ms=7, color=EVENT_COLOURS.get(k, "#57606a"),
                ls="none", label=("TAF16 " + k) if k not in seen else None, zorder=4)
        seen.add(k)
    ax.set_ylim(0, top * 1.35)
    end_ms = qh[-1]["boundary"] * 1000 if qh else 0
    # the relay lane: on periods as high as the stage (relays on of the most seen)
    changes = d["relays"]
    most = max([k for _, k in changes] + [0])
    for i, (a, k) in enumerate(changes):
        if k:
            b = changes[i + 1][0] if i + 1 < len(changes) else end_ms
            strip.axvspan(when(a), when(b), ymin=0.15, ymax=0.15 + 0.7 * k / most, color="#2da44e")
    for i, (a, b, text) in enumerate(limit_spans(d["events"], end_ms)):
        strip.axvspan(when(a), when(b), ymin=0.0, ymax=0.12, color="#fb8f44", label="§14a limit" if i == 0 else None)
        ax.axvspan(when(a), when(b), color="#fb8f44", alpha=0.15, lw=0, zorder=0)
        ax.text(when((a + b) // 2), top * 1.1, text, ha="center", va="bottom", fontsize=7, color="#bc4c00")
    strip.set_yticks([])
    strip.set_ylabel("relays on\n(of %d)" % most if most > 1 else "relay\non", rotation=0, ha="right",
                     va="center")
    strip.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    strip.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 2), tz=tz))
    if qh:
        strip.set_xlim(when(qh[0]["boundary"] * 1000 - QH_S * 1000), when(qh[-1]["boundary"] * 1000))
    strip.set_xlabel("local time (Europe/Berlin)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = pw.get_legend_handles_labels()
    pw.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.06, 1.0), fontsize=8, ncol=1, frameon=False)
    values = len(ys)  # quarter hours with a value: two readings 900 s apart
    total = sum(ys)
    ax.set_title(title or "DICAMM simulated day %s: %d quarter-hour values, %d gaps, %d Wh, %d TAF16 events, "
                 "%d transactions" % (date or "", values, len(gaps), total, len(d["events"]), len(d["tx"])),
                 fontsize=11, pad=8)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return png


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir")
    ap.add_argument("--out", default=None, help="PNG path (default WORKDIR/day.png)")
    ap.add_argument("--date", default=None)
    a = ap.parse_args(argv)
    out = a.out or os.path.join(a.workdir, "day.png")
    render(a.workdir, out, a.date)
    print(out)


if __name__ == "__main__":
    main()
