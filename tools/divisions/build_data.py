"""Build handlers/divisions/data/ from the public datasets named in tools/divisions/README.md.

Run it by hand when a source publishes new data (see the README beside this file for the exact
commands); the bot never runs it and never needs these sources at run time.

Why a generated file instead of depending on the packages at run time:
- vietnam-provinces 2026.x requires Python >= 3.12 while tinbao supports 3.11, and it carries the
  data as ~4 MB of Python modules (enums and lookup tables) of which we use a small part;
- vietnamadminunits pulls shapely, geopy, unidecode and tqdm for what is, for us, one table of
  coordinates and areas;
- the ward boundaries exist only as ~1 GB of GeoJSON in a git repository; simplified and packed
  they are about 1.5 MB.
The generated files are plain TSV (one unit a line, diffable in review) and one packed binary for
the boundaries, which the library reads lazily.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import subprocess
import sys
import unicodedata
import zlib
from array import array
from collections import defaultdict
from pathlib import Path

BOUNDARY_TOLERANCE = 0.0005  # degrees, about 55 m: far below a ward's size, enough to name the ward of a pin
COORDINATE_SCALE = 100_000  # 1e-5 degree, about 1.1 m
BANDO_GEOJSON = "dataset-generation-scripts/resources/gis/sapnhapbando_geojson/"
BANDO_INDEX = "dataset-generation-scripts/resources/gis/sapnhapbando_geo_objects.sql"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", " ", bare.lower()).strip()


def bare(folded: str) -> str:
    """A folded name without its kind: "phuong loc ninh" → "loc ninh" (a commune may since have become a ward)."""
    return re.sub(r"^(phuong|xa|dac khu|thi tran) ", "", folded)


def capitalised(name: str) -> str:
    """"xã Bắc Sơn" (one entry of the source) → "Xã Bắc Sơn", as every other name is written."""
    return name[:1].upper() + name[1:]


PROVINCE_KIND = {"tỉnh": "tỉnh", "thành phố trung ương": "thành phố"}


def read_divisions(package: Path):
    """Provinces and wards (post-2025) and the pre-2025 units with the conversion table, from vietnam-provinces."""
    sys.path.insert(0, str(package))
    import vietnam_provinces
    from vietnam_provinces._ward_conversion_2025 import OLD_TO_NEW
    from vietnam_provinces.legacy import District, Province, Ward

    nested = json.loads(vietnam_provinces.NESTED_DIVISIONS_JSON_PATH.read_text("utf-8"))
    provinces = [(f"{p['code']:02d}", PROVINCE_KIND[p["division_type"]], nfc(p["name"])) for p in nested]
    wards = [(f"{w['code']:05d}", f"{p['code']:02d}", w["division_type"], capitalised(nfc(w["name"])))
             for p in nested for w in p["wards"]]
    old_provinces = {int(p.code): (nfc(p.name), p.division_type.value) for p in Province.iter_all()}
    old_districts = {int(d.code): (nfc(d.name), d.division_type.value, int(d.province_code))
                     for d in District.iter_all()}
    old_wards = {int(w.code): (nfc(w.name), w.division_type.value, int(w.district_code)) for w in Ward.iter_all()}
    conversion = {code: ([f"{n.code:05d}" for n in entry.new_wards], entry.old_ward.is_partly_merged,
                         entry.old_ward.district_code)
                  for code, entry in OLD_TO_NEW.items()}
    return vietnam_provinces.__version__, provinces, wards, old_provinces, old_districts, old_wards, conversion


def read_centroids(dataset_db: Path) -> dict[str, tuple[float, float, float]]:
    """Ward code → (lat, lon, km²) from vietnamadminunits (their figures come from sapnhap.bando.com.vn)."""
    with sqlite3.connect(dataset_db) as db:
        rows = db.execute("select wardCode, wardLat, wardLon, wardAreaKm2 from admin_units").fetchall()
    return {f"{int(code):05d}": (lat, lon, area) for code, lat, lon, area in rows}


def read_boundaries(git_dir: Path, wards):
    """Ward code → shapely geometry, from the sapnhap.bando.com.vn GeoJSON kept in vietnamese-provinces-database."""
    from shapely.geometry import shape

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True).stdout

    index = git("show", f"HEAD:{BANDO_INDEX}").decode("utf-8")
    # One row per unit: ('<official code>', '<name>', '<province code>', '<feature id>', ...
    rows = re.findall(r"\('(\d+)', '((?:[^']|'')*)', '(\d+)', '(diaphanhanhchinhcapxa_2025\.\d+)'", index)
    by_feature = {feature: (f"{int(code):05d}", f"{int(province):02d}", bare(fold(name.replace("''", "'"))))
                  for code, name, province, feature in rows}
    ours = {w[0]: w for w in wards}
    by_name = {(w[1], bare(fold(w[3]))): w[0] for w in wards}
    listing = git("ls-tree", "-r", "HEAD", BANDO_GEOJSON).decode("utf-8").splitlines()
    blobs = [line.split()[2] for line in listing if re.search(r"/xa\d+\.geojson$", line)]
    batch = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"], check=True,
                           input="\n".join(blobs).encode() + b"\n", capture_output=True).stdout
    geometries, missing_blobs, unmatched, renamed = {}, 0, [], []
    at = 0
    while at < len(batch):
        end = batch.index(b"\n", at)
        header = batch[at:end].split()
        at = end + 1
        if len(header) != 3:  # "<sha> missing": a file the snapshot does not hold
            missing_blobs += 1
            continue
        size = int(header[2])
        collection = json.loads(batch[at:at + size])
        at += size + 1
        for feature in collection["features"]:
            code, province, folded = by_feature.get(feature["id"], (None, None, None))
            if code not in ours or bare(fold(ours[code][3])) != folded:
                # The two lists disagree on a few codes; the name within the province settles it.
                wanted = by_name.get((province, folded))
                if wanted is None:
                    unmatched.append(feature["id"])
                    continue
                renamed.append((code, wanted))
                code = wanted
            geometries[code] = shape(feature["geometry"])
    return geometries, missing_blobs, unmatched, renamed


def pack_boundaries(geometries) -> bytes:
    """Simplified rings as zlib-compressed arrays: codes, ring offsets, then lon/lat deltas (1e-5°)."""
    from shapely import simplify
    codes, ward_rings, ring_points, xs, ys = array("I"), array("I"), array("I"), array("i"), array("i")
    last_x = last_y = 0
    for code in sorted(geometries):
        simple = simplify(geometries[code], BOUNDARY_TOLERANCE, preserve_topology=True)
        codes.append(int(code))
        ward_rings.append(len(ring_points))
        for polygon in getattr(simple, "geoms", [simple]):
            for ring in [polygon.exterior, *polygon.interiors]:
                ring_points.append(len(xs))
                for lon, lat in ring.coords[:-1]:  # GeoJSON repeats the first point; the test closes it
                    x, y = round(lon * COORDINATE_SCALE), round(lat * COORDINATE_SCALE)
                    xs.append(x - last_x)
                    ys.append(y - last_y)
                    last_x, last_y = x, y
    ward_rings.append(len(ring_points))
    ring_points.append(len(xs))
    header = array("I", [len(codes), len(ring_points), len(xs)])
    body = b"".join(a.tobytes() for a in (header, codes, ward_rings, ring_points, xs, ys))
    return b"TBB1" + zlib.compress(body, 9)


def tsv(path: Path, header: str, rows) -> int:
    lines = [header] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vietnam-provinces", type=Path, required=True,
                        help="folder holding the vietnam_provinces package (an unpacked wheel)")
    parser.add_argument("--vietnamadminunits", type=Path, required=True,
                        help="folder holding the vietnamadminunits package (an unpacked wheel)")
    parser.add_argument("--boundaries", type=Path,
                        help="git directory of thanglequoc/vietnamese-provinces-database (optional)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "handlers/divisions/data")
    args = parser.parse_args()
    version, provinces, wards, old_provinces, old_districts, old_wards, conversion = read_divisions(
        args.vietnam_provinces)
    centroids = read_centroids(args.vietnamadminunits / "vietnamadminunits/data/dataset.db")
    report = [f"vietnam-provinces {version}: {len(provinces)} provinces, {len(wards)} communes/wards, "
              f"{len(old_provinces)} old provinces, {len(old_districts)} old districts, {len(old_wards)} old wards, "
              f"{len(conversion)} conversion rows"]

    geometries = {}
    if args.boundaries:
        geometries, missing_blobs, unmatched, renamed = read_boundaries(args.boundaries, wards)
        report.append(f"boundaries: {len(geometries)} wards ({missing_blobs} files absent from the snapshot, "
                      f"{len(unmatched)} features matched no ward, {len(renamed)} matched by name: {renamed})")
        (args.out / "boundaries.bin").write_bytes(pack_boundaries(geometries))

    ward_rows = []
    for code, province, kind, name in wards:
        lat, lon, area = centroids.get(code, (None, None, None))
        if code in geometries:
            shape = geometries[code]
            point = shape.centroid
            if not shape.contains(point):  # a crescent's centroid lies outside it
                point = shape.representative_point()
            lat, lon = point.y, point.x
            if area is None:  # two communes lack it in the source; degrees² at this latitude, in km²
                area = round(shape.area * 111.32 ** 2 * math.cos(math.radians(lat)), 2)
        ward_rows.append((code, province, kind, name, f"{lat:.5f}", f"{lon:.5f}", "" if area is None else f"{area:g}"))
    args.out.mkdir(parents=True, exist_ok=True)
    tsv(args.out / "provinces.tsv", "code\tkind\tname", provinces)
    tsv(args.out / "wards.tsv", "code\tprovince\tkind\tname\tlat\tlon\tarea_km2", ward_rows)

    # Old units → the new wards that took them over. A district or a province maps to every new ward any
    # of its communes went to; a commune split between several new wards lists them all.
    new_wards_of_district, new_provinces_of_old = defaultdict(set), defaultdict(set)
    province_of_ward = {w[0]: w[1] for w in wards}
    ward_rows, no_successor = [], []
    for code, (name, kind, district) in sorted(old_wards.items()):
        if code not in conversion:
            no_successor.append(name)
            continue
        targets, partly, _ = conversion[code]
        new_wards_of_district[district].update(targets)
        ward_rows.append((f"{code:05d}", f"{district:03d}", kind, name, int(partly), " ".join(targets)))
    # Island districts without communes (Bạch Long Vĩ, Cồn Cỏ, Hoàng Sa) became the special zone of their name.
    special_zones = {fold(name).removeprefix("dac khu "): code for code, _, kind, name in wards if kind == "đặc khu"}
    for code, (name, kind, _) in old_districts.items():
        zone = special_zones.get(fold(name).removeprefix("huyen "))
        if not new_wards_of_district.get(code) and zone:
            new_wards_of_district[code].add(zone)
    district_rows = []
    for code, (name, kind, province) in sorted(old_districts.items()):
        targets = sorted(new_wards_of_district.get(code, ()))
        new_provinces_of_old[province].update(province_of_ward[t] for t in targets)
        if targets:
            district_rows.append((f"{code:03d}", f"{province:02d}", kind, name, " ".join(targets)))
    province_rows = [(f"{code:02d}", kind, name, " ".join(sorted(new_provinces_of_old[code])))
                     for code, (name, kind) in sorted(old_provinces.items())]
    tsv(args.out / "old_provinces.tsv", "code\tkind\tname\tnew_provinces", province_rows)
    tsv(args.out / "old_districts.tsv", "code\tprovince\tkind\tname\tnew_wards", district_rows)
    tsv(args.out / "old_wards.tsv", "code\tdistrict\tkind\tname\tpartly\tnew_wards", ward_rows)
    report.append(f"old units with a successor: {len(province_rows)} provinces, {len(district_rows)} districts, "
                  f"{len(ward_rows)} communes; {len(no_successor)} communes of the old list have none "
                  f"(dissolved before 1 July 2025): {', '.join(no_successor)}")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
