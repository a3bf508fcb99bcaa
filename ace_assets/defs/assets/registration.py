"""Cross-session registration: one id per neuron across the sessions of one field of view."""

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from ace_assets.catalog.curation import read_curation
from ace_assets.catalog.experiments import read_experiments
from ace_assets.cohort.registration_groups import REGISTRATION_GROUPS_CSV, registration_groups
from ace_assets.defs.assets.calcium import miniscope_sources
from ace_assets.defs.assets.catalog import experiments, line_parameters
from ace_assets.defs.assets.cohort import COHORT_AUTOMATION, COHORT_GROUP
from ace_assets.defs.failures import input_errors_as_failures
from ace_assets.defs.figures import new_figure, save_png
from ace_assets.defs.manifests import NotMaterializedError, write_manifest
from ace_assets.defs.resources import PathsResource
from ace_assets.defs.results import Result, SourcesResult, results_asset, staged
from ace_assets.demo.registration_truth import score_registration
from ace_assets.errors import AceInputError
from ace_assets.io.csv_export import write_csv
from ace_assets.miniscope.extraction.result import apply_rejections, compute_contours, load_result
from ace_assets.miniscope.footprint_matching import max_distance
from ace_assets.miniscope.session_registry import Registration, Session, register_sessions

#: figures shown in the UI (the others are only written to the results folder)
MAX_EMBEDDED_FIGURES = 4
TABLE_COLUMNS = [
    "group",
    "global_id",
    "line_number",
    "component",
    "confidence",
    "distance_px",
    "overlap",
    "reference_line",
]


@results_asset(
    group_name=COHORT_GROUP,
    deps=[
        experiments,
        dg.AssetDep(miniscope_sources, partition_mapping=dg.AllPartitionMapping()),
    ],
    kinds={"pandas", "csv", "scipy"},
    automation_condition=COHORT_AUTOMATION,
)
def cross_session_registration(
    context: dg.AssetExecutionContext, paths: PathsResource
) -> dg.MaterializeResult:
    """The same neurons across sessions: one global id per cell for each animal's lines.

    Lines are grouped by the project's ``registration_groups.csv`` (``group,line number``),
    else a ``registration groups`` column of experiments.csv, else the animal ``id``. In a
    group the earliest session is the reference: each other session's correlation image is
    aligned to it (rigid with a turn of up to a few degrees, then a smooth non-rigid field
    bounded by 2 gSig), its footprints are mapped onto the reference frame and matched
    one-to-one by centre distance (at most 2 gSig) and footprint overlap; a cell first seen
    in a later session gets a new id that later sessions can match too. Crops
    (``crop_coords``) are taken into account, so frames of different sizes register; a
    session whose image does not match the reference's is named and kept apart.

    ``registration.csv`` has one row per cell and line it is seen in: ``global_id``,
    ``line_number``, ``component`` (the id in that line's sources, events.csv's
    ``component``), ``confidence`` (match score less the best alternative's, 0-1),
    ``distance_px`` and ``overlap``. Join per-line results on ``(line_number, component)``
    to follow a cell across lines, and cohort_table on ``line_number`` to bring each
    line's catalog entry. ``registration_wide.csv``: one row per global id, a component and
    confidence column per line. Curated components (curation.csv) are left out.
    """
    with input_errors_as_failures():
        catalog = read_experiments(paths.experiments_csv, paths.path_rules)
        groups, source = registration_groups(catalog, paths.project)
    done: list[GroupRegistration] = []
    left_out: dict[int, str] = {}
    truth_matches: dict[int, dict[str, int]] = {}
    for group, lines in groups.items():
        outcome = _register_group(paths, group, lines, left_out, truth_matches)
        if outcome is not None:
            done.append(outcome)
    not_aligned = {k: v for g in done for k, v in g.not_aligned().items()}
    summaries = [g.summary() for g in done]
    table = (
        pd.concat([g.long_table() for g in done], ignore_index=True)
        if done
        else pd.DataFrame(columns=TABLE_COLUMNS)
    )
    wide_table = (
        pd.concat([g.wide_table() for g in done], ignore_index=True)
        if done
        else pd.DataFrame({"global_id": []})
    )
    accuracy = score_registration(paths.data, table, truth_matches)
    own = Result.of(context, paths)
    figures: list[tuple[str, Path]] = []
    with staged(context, paths) as out:
        write_csv(table, out / "registration.csv")
        write_csv(wide_table, out / "registration_wide.csv")
        for g in done:
            if len(g.sessions) > 1:
                name = f"registration_{_file_safe(g.name)}.png"
                _group_figure(g, out / name)
                figures.append((g.name, own.folder / name))
        write_manifest(
            out,
            {
                "csv": str(own.folder / "registration.csv"),
                "wide_csv": str(own.folder / "registration_wide.csv"),
                "groups_from": source,
                "groups": summaries,
                "left_out": {str(k): v for k, v in left_out.items()},
                "not_aligned": {str(k): v for k, v in not_aligned.items()},
                "figures": [str(p) for _, p in figures],
                "ground_truth": accuracy,
            },
        )
    for why in not_aligned.values():
        context.log.warning(why)
    metadata: dict[str, Any] = {
        f"matched_contours_{_file_safe(g)}": _embedded(path, g)
        for g, path in figures[:MAX_EMBEDDED_FIGURES]
    }
    metadata.update(
        {
            "dagster/row_count": len(table),
            "groups_from": dg.MetadataValue.text(source),
            "groups": dg.MetadataValue.md(_groups_markdown(summaries)),
            "global_neurons": int(table["global_id"].nunique()) if len(table) else 0,
            "not_aligned": dg.MetadataValue.text("; ".join(not_aligned.values()) or "none"),
            "left_out": dg.MetadataValue.text(
                "; ".join(f"line {n}: {why}" for n, why in sorted(left_out.items())) or "none"
            ),
            "csv": dg.MetadataValue.path(str(own.folder / "registration.csv")),
            "wide_csv": dg.MetadataValue.path(str(own.folder / "registration_wide.csv")),
        }
    )
    for line, scores in accuracy.items():
        for name in ("precision", "recall"):
            metadata[f"truth_{name}_{line}"] = float(scores[name])
    return dg.MaterializeResult(metadata=metadata, value=own)


def _session(paths: PathsResource, line: int) -> tuple[Session, float, dict[str, int]]:
    """The line's curated sources as a :class:`Session`, its gSig and its demo truth match."""
    sources = SourcesResult.at(paths, miniscope_sources, line)
    params = line_parameters(paths, line).values
    result = load_result(sources.sources)  # NotMaterializedError: never run for this line
    rejected = read_curation(paths.project / "curation.csv", line)
    result = apply_rejections(result, rejected)
    crop = params["crop_coords"]
    origin = (int(crop[1]), int(crop[0])) if crop is not None else (0, 0)
    gsig = float(np.mean(params["gSig"]))
    session = Session(line, result.A, result.ids, result.correlation_image, origin=origin)
    return session, gsig, sources.truth_match


@dataclass(frozen=True)
class GroupRegistration:
    """One group's registration, the sessions it was made of and the gSig it used."""

    name: str
    registration: Registration
    sessions: dict[int, Session]
    gsig: float

    def _global(self, ids: Any) -> list[str]:
        return [f"{self.name}-{int(g)}" for g in ids]

    def long_table(self) -> pd.DataFrame:
        reg = self.registration
        t = reg.table.rename(columns={"session": "line_number"}).copy()
        t["group"] = self.name
        t["global_id"] = self._global(t["global_id"])
        t["reference_line"] = int(reg.reference)
        t["component"] = t["component"].astype(int)
        t["line_number"] = t["line_number"].astype(int)
        return t[TABLE_COLUMNS]

    def wide_table(self) -> pd.DataFrame:
        w = self.registration.wide()
        w.insert(0, "group", self.name)
        w["global_id"] = self._global(w["global_id"])
        return w

    def not_aligned(self) -> dict[int, str]:
        reg = self.registration
        return {
            int(key): (
                f"line {key} was not matched to line {reg.reference} ({self.name}): {why} "
                f"Check crop_coords of both lines in analysis_parameters.csv, or give line "
                f"{key} its own group in {REGISTRATION_GROUPS_CSV}"
            )
            for key, why in reg.not_aligned.items()
        }

    def summary(self) -> dict[str, Any]:
        reg = self.registration
        t = reg.table
        per_line = {}
        for key, transform in reg.transforms.items():
            mine = t[t["session"] == key]
            shared = t[t["global_id"].isin(mine["global_id"])].groupby("global_id").size()
            field = transform.field
            per_line[str(key)] = {
                "components": len(mine),
                "seen_in_another_line": int((shared > 1).sum()),
                "rotation_deg": round(float(transform.angle_deg), 3),
                "shift_px": [round(float(v), 2) for v in transform.translation],
                "nonrigid_max_px": round(float(np.abs(field).max()), 2)
                if field is not None
                else 0.0,
                "image_correlation": round(float(transform.correlation), 3),
                **{k: round(v, 6) for k, v in reg.evidence.get(key, {}).items()},
            }
        return {
            "group": self.name,
            "reference_line": int(reg.reference),
            "gsig": self.gsig,
            "max_distance_px": max_distance(self.gsig),
            "global_neurons": int(t["global_id"].nunique()) if len(t) else 0,
            "lines": per_line,
        }


def _register_group(
    paths: PathsResource,
    group: str,
    lines: list[int],
    left_out: dict[int, str],
    truth_matches: dict[int, dict[str, int]],
) -> GroupRegistration | None:
    """The group's lines with sources, registered; the others go to ``left_out`` with why."""
    sessions: dict[int, Session] = {}
    gsigs: list[float] = []
    for line in lines:
        try:
            session, gsig, match = _session(paths, line)
        except (NotMaterializedError, FileNotFoundError, KeyError) as exc:
            left_out[line] = f"no sources yet ({exc})"
            continue
        except AceInputError as exc:
            left_out[line] = str(exc)
            continue
        sessions[line] = session
        gsigs.append(gsig)
        truth_matches[line] = match
    if not sessions:
        return None
    gsig = max(gsigs)  # the larger neuron size: a looser distance limit, never a missed cell
    return GroupRegistration(
        group, register_sessions(list(sessions.values()), gsig), sessions, gsig
    )


def _groups_markdown(summaries: list[dict[str, Any]]) -> str:
    if not summaries:
        return "no line with sources yet"
    out = [
        "| group | line | components | also in another line | turn (deg) | shift (px) "
        "| close matches (mirrored decoys) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        for line, d in s["lines"].items():
            ref = " (reference)" if int(line) == s["reference_line"] else ""
            out.append(
                f"| {s['group']} | {line}{ref} | {d['components']} | {d['seen_in_another_line']} "
                f"| {d['rotation_deg']} | {d['shift_px']} | {_evidence(d)} |"
            )
    return "\n".join(out)


def _evidence(line: dict[str, Any]) -> str:
    if "close_matches" not in line:
        return ""
    return f"{line['close_matches']:.0f} ({line['decoy_close_matches']:.1f})"


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "group"


def _group_figure(g: GroupRegistration, path: Path) -> None:
    """Contours of every session on the reference's correlation image; match distances."""
    reg, sessions, group = g.registration, g.sessions, g.name
    fig, axes = new_figure(11, 5, ncols=2)
    ax = axes[0, 0]
    image = sessions[int(reg.reference)].image
    low, high = np.percentile(image, [1, 99.5])
    # cells in mid grey, so that contours of every colour stay visible on them
    ax.imshow(image, cmap="gray", vmin=low, vmax=low + 1.6 * (high - low))
    t = reg.table
    counts = t.groupby("global_id")["session"].nunique()
    multi = set(counts[counts > 1].index)
    colours = ["tab:red", "tab:cyan", "tab:orange", "tab:green", "tab:purple", "tab:pink"]
    for i, (key, fp) in enumerate(reg.footprints.items()):
        colour = colours[i % len(colours)]
        mine = t[t["session"] == key]
        global_of = dict(zip(mine["component"], mine["global_id"], strict=True))
        ids = sessions[int(key)].ids
        shared = 0
        for k, cont in enumerate(compute_contours(fp.A, fp.dims, energy=0.8)):
            matched = global_of.get(int(ids[k])) in multi
            shared += bool(matched)
            if not len(cont):
                continue
            closed = np.vstack([cont, cont[:1]])
            width = 1.8 if key == reg.reference else 0.9  # the reference's outline beneath
            ax.plot(closed[:, 1], closed[:, 0], color=colour, lw=width, ls="-" if matched else ":")
        role = "reference" if key == reg.reference else f"{shared} of {len(ids)} matched"
        ax.plot([], [], color=colour, label=f"line {key}: {role}")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(
        f"{group}: contours on line {reg.reference}'s frame (solid: seen in 2+ lines)", fontsize=8
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax = axes[0, 1]
    for i, (key, dist) in enumerate(reg.match_distances.items()):
        matched = t.loc[(t["session"] == key) & t["distance_px"].notna(), "distance_px"]
        colour = colours[(i + 1) % len(colours)]
        bins = np.linspace(0, max(float(dist.max()) if len(dist) else 1.0, 1.0), 25)
        ax.hist(dist, bins=bins, histtype="step", color=colour, label=f"line {key}: candidates")
        ax.hist(matched, bins=bins, color=colour, alpha=0.5, label=f"line {key}: matched")
    ax.axvline(max_distance(g.gsig), color="k", ls=":", lw=0.8)
    ax.set_xlabel("centre distance after alignment (px)")
    ax.set_ylabel("pairs")
    ax.set_title("centre distances of candidate pairs (dotted: 2 gSig, the limit)", fontsize=8)
    ax.legend(fontsize=7)
    save_png(fig, path)


def _embedded(path: Path, group: str) -> dg.MetadataValue:
    """The figure inline (an unpartitioned asset has no line report to hold it)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    title = f"Matched contours, {group}"
    return dg.MetadataValue.md(
        f"**{title}** (`{path}`)\n\n![{title}](data:image/png;base64,{data})"
    )
