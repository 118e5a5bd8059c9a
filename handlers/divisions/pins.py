"""A map pin → the ward it falls in, and its neighbours, from the shipped ward boundaries."""

from __future__ import annotations

import heapq
import math
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate

from handlers.divisions.catalog import DATA, Catalog, Ward

SCALE = 100_000  # boundaries are stored in 1e-5 degree (tools/divisions/build_data.py)
METRES_PER_DEGREE = 111_320.0
# Wards whose box lies further than this from the pin are not measured exactly (a pin needs its neighbours,
# not the whole province); a ward is offered anyway if it is among the nearest by centre.
NEAR_METRES = 3_000.0
# The boxes are filed in cells of this size (about 11 km), so a pin looks only at the wards of its own cell
# instead of every ward of the country: sorting 3,321 wards by distance took most of a lookup's time.
CELL = SCALE // 10


@dataclass(frozen=True, slots=True)
class NearbyWard:
    ward: Ward
    metres: float  # from the pin to the ward's boundary; 0 when the pin is inside it
    inside: bool


@dataclass(frozen=True, slots=True)
class _Shape:
    rings: tuple[tuple[int, int], ...]  # (first point, end) in the point arrays
    box: tuple[int, int, int, int]  # min x, min y, max x, max y in 1e-5 degree


class Boundaries:
    """Simplified outlines of the wards (about 55 m of tolerance), read on the first pin."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @cached_property
    def _data(self) -> tuple[dict[str, _Shape], array, array]:
        raw = (DATA / "boundaries.bin").read_bytes()
        if raw[:4] != b"TBB1":
            raise ValueError("handlers/divisions/data/boundaries.bin is not a boundary file")
        body = zlib.decompress(raw[4:])
        header = array("I")
        header.frombytes(body[:12])
        wards, rings, points = header
        at = 12

        def take(kind: str, count: int) -> array:
            nonlocal at
            values = array(kind)
            values.frombytes(body[at:at + values.itemsize * count])
            at += values.itemsize * count
            return values
        codes, ward_rings, ring_points = take("I", wards), take("I", wards + 1), take("I", rings)
        xs, ys = array("i", accumulate(take("i", points))), array("i", accumulate(take("i", points)))
        shapes = {}
        for i, code in enumerate(codes):
            spans = tuple((ring_points[r], ring_points[r + 1]) for r in range(ward_rings[i], ward_rings[i + 1]))
            first, end = spans[0][0], spans[-1][1]
            shapes[f"{code:05d}"] = _Shape(spans, (min(xs[first:end]), min(ys[first:end]),
                                                    max(xs[first:end]), max(ys[first:end])))
        return shapes, xs, ys

    def has(self, code: str) -> bool:
        return code in self._data[0]

    @cached_property
    def _without_outline(self) -> tuple[Ward, ...]:
        return tuple(w for w in self.catalog.wards.values() if w.code not in self._data[0])

    @cached_property
    def _cells(self) -> dict[tuple[int, int], tuple[str, ...]]:
        """Grid cell → the wards whose box, widened by NEAR_METRES, reaches into it."""
        near = math.ceil(NEAR_METRES / METRES_PER_DEGREE * SCALE)
        cells: dict[tuple[int, int], list[str]] = {}
        for code, shape in self._data[0].items():
            x0, y0, x1, y1 = shape.box
            # Widened in x as at the equator: more than enough at Vietnam's latitudes (cos 23° ≈ 0.92).
            for cx in range((x0 - near) // CELL, (x1 + near) // CELL + 1):
                for cy in range((y0 - near) // CELL, (y1 + near) // CELL + 1):
                    cells.setdefault((cx, cy), []).append(code)
        return {cell: tuple(codes) for cell, codes in cells.items()}

    def _inside(self, shape: _Shape, x: int, y: int) -> bool:
        """Even-odd rule over every ring, so holes and several parts count right."""
        _, xs, ys = self._data
        inside = False
        for first, end in shape.rings:
            px, py = xs[end - 1], ys[end - 1]
            for i in range(first, end):
                qx, qy = xs[i], ys[i]
                if (qy > y) != (py > y) and x < (px - qx) * (y - qy) / (py - qy) + qx:
                    inside = not inside
                px, py = qx, qy
        return inside

    def _metres_to_edge(self, shape: _Shape, x: int, y: int, x_scale: float) -> float:
        _, xs, ys = self._data
        best = math.inf
        for first, end in shape.rings:
            px, py = (xs[end - 1] - x) * x_scale, float(ys[end - 1] - y)
            for i in range(first, end):
                qx, qy = (xs[i] - x) * x_scale, float(ys[i] - y)
                dx, dy = qx - px, qy - py
                length = dx * dx + dy * dy
                t = 0.0 if length == 0 else max(0.0, min(1.0, -(px * dx + py * dy) / length))
                best = min(best, math.hypot(px + t * dx, py + t * dy))
                px, py = qx, qy
        return best * METRES_PER_DEGREE / SCALE

    def nearest(self, lat: float, lon: float, *, within: Iterable[str] | None = None, limit: int = 3,
                max_metres: float | None = None) -> list[NearbyWard]:
        """The ward the pin falls in first, then the nearest others, with their distances."""
        shapes = self._data[0]
        allowed = self.catalog.allowed(within)
        x, y = round(lon * SCALE), round(lat * SCALE)
        x_scale = math.cos(math.radians(lat))
        near = NEAR_METRES / METRES_PER_DEGREE * SCALE
        wards = self.catalog.wards
        candidates = {}
        for code in self._cells.get((x // CELL, y // CELL), ()):
            shape = shapes[code]
            if (allowed is None or code in allowed) and shape.box[0] - near <= x <= shape.box[2] + near and \
                    shape.box[1] - near <= y <= shape.box[3] + near:
                candidates[code] = wards[code]
        for ward in self._without_outline:  # measured from its centre: cheap, and there are few
            if allowed is None or ward.code in allowed:
                candidates[ward.code] = ward
        found = self._measured(candidates.values(), lat, lon, x, y, x_scale)
        # Too few wards near the pin (at sea, at the edge of a deployment's area): the nearest by centre, however
        # far they are.
        if sum(n.metres <= NEAR_METRES for n in found) < limit:
            served = [w for w in wards.values() if (allowed is None or w.code in allowed) and w.code not in candidates]
            by_centre = heapq.nsmallest(limit + 3, served, key=lambda w: _metres(lat, lon, w.lat, w.lon))
            found += self._measured(by_centre, lat, lon, x, y, x_scale)
        found.sort(key=lambda n: (not n.inside, n.metres))
        if max_metres is not None:
            found = [n for n in found if n.metres <= max_metres]
        return found[:limit]

    def _measured(self, wards: Iterable[Ward], lat: float, lon: float, x: int, y: int,
                  x_scale: float) -> list[NearbyWard]:
        shapes = self._data[0]
        found = []
        for ward in wards:
            shape = shapes.get(ward.code)
            if shape is None:  # no shipped outline: its centre, less the radius of a disc of its area
                radius = math.sqrt((ward.area_km2 or 0) / math.pi) * 1000
                metres = max(0.0, _metres(lat, lon, ward.lat, ward.lon) - radius)
                found.append(NearbyWard(ward, metres, inside=False))
            elif shape.box[0] <= x <= shape.box[2] and shape.box[1] <= y <= shape.box[3] and \
                    self._inside(shape, x, y):
                found.append(NearbyWard(ward, 0.0, inside=True))
            else:
                found.append(NearbyWard(ward, self._metres_to_edge(shape, x, y, x_scale), inside=False))
        return found


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))
