"""TFLite's custom op ``TFLite_Detection_PostProcess`` (SSD box decoding and the fast,
class-agnostic NMS or the regular, per-class one) as one TIR kernel, as TFLite Micro's
detection_postprocess.cc computes it, so that it emits standalone C with no allocation.

TVM's own conversion goes through Relax vision ops (top-k, all-class NMS) that
neither run ahead of time nor order ties as TFLite does. Here:

- boxes are decoded in double and rounded to float, as TFLite Micro does;
- each anchor keeps its best class (the first one on equal scores);
- anchors at or above the score threshold are taken greedily by decreasing score
  (the lower anchor first on equal scores: TFLite Micro's stable merge sort), each
  one suppressing every remaining anchor whose IoU with it exceeds the threshold,
  until max_detections are taken. Picking the best remaining candidate each time
  selects exactly the anchors of TFLite Micro's sorted sweep, in O(max_detections
  x anchors) without a sort buffer;
- the regular NMS (``use_regular_nms``) runs that greedy NMS per class on the class's
  own scores, at most detections_per_class picks, and inserts each pick into the
  output rows kept sorted by score (ties: the earlier class, then the earlier pick,
  as TFLite Micro's partial sort over its merged buffer orders them), cut at
  max_detections.

Rows past num_detections are zero (TFLite Micro's fast NMS leaves them unwritten).
Scratch memory (decoded boxes, candidate flags, the fast NMS's best scores and
classes) is returned as extra kernel outputs, so the planner places it in the
arena. More than one class per detection is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvmq.errors import TvmqError

CUSTOM_CODE = "TFLite_Detection_PostProcess"
OPERATOR = f"CUSTOM:{CUSTOM_CODE}"
_FLOAT_OPTIONS = ("nms_score_threshold", "nms_iou_threshold", "y_scale", "x_scale")
_REQUIRED = ("max_detections", "num_classes", *_FLOAT_OPTIONS, "h_scale", "w_scale")


@dataclass(frozen=True)
class DetectionOptions:
    """The op's flexbuffer custom options that the kernel reads."""

    max_detections: int
    max_classes_per_detection: int
    num_classes: int
    score_threshold: float
    iou_threshold: float
    y_scale: float
    x_scale: float
    h_scale: float
    w_scale: float
    use_regular_nms: bool
    detections_per_class: int

    @classmethod
    def parse(cls, raw: bytes) -> DetectionOptions:
        from flatbuffers import flexbuffers

        try:
            options = flexbuffers.Loads(raw)
        except Exception as error:  # a truncated or corrupt flexbuffer
            raise TvmqError(f"unreadable custom options ({error})") from error
        if not isinstance(options, dict):
            raise TvmqError("custom options are not a flexbuffer map")
        missing = [key for key in _REQUIRED if key not in options]
        if missing:
            raise TvmqError(f"custom options lack {', '.join(missing)}")
        try:
            return cls._typed(options)
        except (TypeError, ValueError) as error:  # e.g. a string where a number belongs
            raise TvmqError(f"custom options of the wrong type ({error})") from error

    @classmethod
    def _typed(cls, options: dict) -> DetectionOptions:
        def single(key: str) -> float:
            """As TFLite Micro reads it (AsFloat): a float32, however the file stores it."""
            with np.errstate(over="ignore"):  # too large: inf, refused below
                return float(np.float32(float(options[key])))

        return cls(
            max_detections=int(options["max_detections"]),
            max_classes_per_detection=int(options.get("max_classes_per_detection", 1)),
            num_classes=int(options["num_classes"]),
            score_threshold=single("nms_score_threshold"),
            iou_threshold=single("nms_iou_threshold"),
            y_scale=single("y_scale"),
            x_scale=single("x_scale"),
            h_scale=single("h_scale"),
            w_scale=single("w_scale"),
            use_regular_nms=bool(options.get("use_regular_nms", False)),
            detections_per_class=int(options.get("detections_per_class", 100)),
        )

    def refusal(self) -> str | None:
        """Why the kernel cannot run these options, or None."""
        if self.use_regular_nms and self.detections_per_class <= 0:
            return "detections_per_class must be positive for the regular NMS"
        if self.max_classes_per_detection != 1:
            return "max_classes_per_detection other than 1 is not supported"
        if self.max_detections <= 0 or self.num_classes <= 0:
            return "max_detections and num_classes must be positive"
        if not 0.0 < self.iou_threshold <= 1.0:
            return f"nms_iou_threshold {self.iou_threshold} is not in (0, 1]"
        scales = np.array([self.y_scale, self.x_scale, self.h_scale, self.w_scale])
        if not np.all(np.isfinite(scales) & (scales > 0.0)):
            return "y_scale, x_scale, h_scale and w_scale must be positive and finite"
        return None


def shape_refusal(
    options: DetectionOptions, encodings: tuple[int, ...], scores: tuple[int, ...], anchors
) -> str | None:
    """Why the op's tensor shapes do not fit TFLite Micro's kernel, or None."""
    if len(encodings) != 3 or encodings[0] != 1 or encodings[2] < 4:
        return f"box encodings {list(encodings)} are not [1, anchors, >= 4]"
    if len(scores) != 3 or scores[:2] != encodings[:2]:
        return f"class predictions {list(scores)} do not match box encodings {list(encodings)}"
    if scores[2] - options.num_classes not in (0, 1):
        return f"{scores[2]} class scores for num_classes {options.num_classes}"
    if tuple(anchors) != (encodings[1], 4):
        return f"anchors {list(anchors)} are not [{encodings[1]}, 4]"
    return None


def output_shapes(options: DetectionOptions) -> list[tuple[int, ...]]:
    """Detection boxes, classes, scores and their count, as TFLite sizes them."""
    rows = options.max_detections
    return [(1, rows, 4), (1, rows), (1, rows), (1,)]


def kernel(options: DetectionOptions, anchors: int, coords: int, scores: int):
    """The PrimFunc: inputs encodings [1, anchors, coords], scores [1, anchors,
    scores], anchors [anchors, 4] (y, x, h, w) and the four scales (y, x, h, w: a
    tensor, since C literals of doubles lose digits); outputs boxes, classes, scores,
    count, then the scratch of :func:`scratch_shapes`."""
    build = _regular if options.use_regular_nms else _fast
    return build(options, anchors, coords, scores)


def _macros(anchors: int, iou: float):
    """TIR macros both NMS kernels share: box decoding and IoU suppression."""
    from tvm.script import tirx as T

    half, zero = T.float64(0.5), T.float32(0.0)
    iou_threshold = T.float32(iou)

    @T.macro
    def decode(enc, anc, scl, decoded, i):
        ycenter = T.bind(
            T.Cast(
                "float32",
                T.Cast("float64", enc[0, i, 0])
                / T.Cast("float64", scl[0])
                * T.Cast("float64", anc[i, 2])
                + T.Cast("float64", anc[i, 0]),
            )
        )
        xcenter = T.bind(
            T.Cast(
                "float32",
                T.Cast("float64", enc[0, i, 1])
                / T.Cast("float64", scl[1])
                * T.Cast("float64", anc[i, 3])
                + T.Cast("float64", anc[i, 1]),
            )
        )
        half_h = T.bind(
            T.Cast(
                "float32",
                half
                * T.exp(T.Cast("float64", enc[0, i, 2]) / T.Cast("float64", scl[2]))
                * T.Cast("float64", anc[i, 2]),
            )
        )
        half_w = T.bind(
            T.Cast(
                "float32",
                half
                * T.exp(T.Cast("float64", enc[0, i, 3]) / T.Cast("float64", scl[3]))
                * T.Cast("float64", anc[i, 3]),
            )
        )
        decoded[i, 0] = ycenter - half_h
        decoded[i, 1] = xcenter - half_w
        decoded[i, 2] = ycenter + half_h
        decoded[i, 3] = xcenter + half_w

    @T.macro
    def suppress(decoded, active, s):
        """Deactivate the candidates whose IoU with the taken anchor `s` exceeds the
        threshold (TFLite Micro's ComputeIntersectionOverUnion, `s` first)."""
        active[s] = T.int8(0)
        area_s = T.bind((decoded[s, 2] - decoded[s, 0]) * (decoded[s, 3] - decoded[s, 1]))
        for j in range(anchors):
            if active[j] != T.int8(0):
                area_j = T.bind((decoded[j, 2] - decoded[j, 0]) * (decoded[j, 3] - decoded[j, 1]))
                if area_s > zero and area_j > zero:
                    inter = T.bind(
                        T.max(
                            T.min(decoded[s, 2], decoded[j, 2])
                            - T.max(decoded[s, 0], decoded[j, 0]),
                            zero,
                        )
                        * T.max(
                            T.min(decoded[s, 3], decoded[j, 3])
                            - T.max(decoded[s, 1], decoded[j, 1]),
                            zero,
                        )
                    )
                    if inter / (area_s + area_j - inter) > iou_threshold:
                        active[j] = T.int8(0)

    return decode, suppress


def _fast(options: DetectionOptions, anchors: int, coords: int, scores: int):
    """The fast NMS: scratch decoded boxes, best score and class per anchor, candidate
    flags and the selection state (best anchor, count, finished)."""
    from tvm.script import tirx as T

    n, rows = anchors, options.max_detections
    offset = scores - options.num_classes
    classes = options.num_classes
    score_threshold = T.float32(options.score_threshold)
    zero = T.float32(0.0)
    decode, suppress = _macros(n, options.iou_threshold)

    @T.prim_func(s_tir=True)
    def detection_postprocess(
        enc: T.Buffer((1, n, coords), "float32"),
        cls: T.Buffer((1, n, scores), "float32"),
        anc: T.Buffer((n, 4), "float32"),
        scl: T.Buffer((4,), "float32"),
        boxes: T.Buffer((1, rows, 4), "float32"),
        labels: T.Buffer((1, rows), "float32"),
        confidences: T.Buffer((1, rows), "float32"),
        count: T.Buffer((1,), "float32"),
        decoded: T.Buffer((n, 4), "float32"),
        best: T.Buffer((n,), "float32"),
        label: T.Buffer((n,), "int32"),
        active: T.Buffer((n,), "int8"),
        state: T.Buffer((3,), "int32"),
    ):
        T.func_attr({"tir.noalias": True})
        with T.sblock("root"):  # noqa: SIM117 (TVMScript opens one block per with)
            with T.sblock("detection_postprocess"):  # one opaque step: nothing to schedule
                T.reads(enc[0, 0:n, 0:coords], cls[0, 0:n, 0:scores], anc[0:n, 0:4], scl[0:4])
                T.writes(boxes[0, 0:rows, 0:4], labels[0, 0:rows], confidences[0, 0:rows], count[0])
                for i in range(n):
                    decode(enc, anc, scl, decoded, i)
                    best[i] = cls[0, i, offset]
                    label[i] = 0
                    for c in range(1, classes):
                        if cls[0, i, offset + c] > best[i]:
                            best[i] = cls[0, i, offset + c]
                            label[i] = c
                    active[i] = T.Cast("int8", best[i] >= score_threshold)
                for r in range(rows):
                    for k in range(4):
                        boxes[0, r, k] = zero
                    labels[0, r] = zero
                    confidences[0, r] = zero
                state[1] = 0
                state[2] = 0
                for _r in range(rows):
                    if state[2] == 0:
                        state[0] = -1
                        for j in range(n):
                            if active[j] != T.int8(0) and (
                                state[0] < 0 or best[j] > best[state[0]]
                            ):
                                state[0] = j
                        if state[0] < 0:
                            state[2] = 1
                        else:
                            s = T.bind(state[0])
                            for k in range(4):
                                boxes[0, state[1], k] = decoded[s, k]
                            labels[0, state[1]] = T.Cast("float32", label[s])
                            confidences[0, state[1]] = best[s]
                            state[1] = state[1] + 1
                            suppress(decoded, active, s)
                count[0] = T.Cast("float32", state[1])

    return detection_postprocess


def _regular(options: DetectionOptions, anchors: int, coords: int, scores: int):
    """The regular NMS: per class, the greedy NMS over the anchors at or above the
    threshold (by decreasing score, the lower anchor first), at most
    detections_per_class of them, each inserted into the rows sorted by decreasing
    score after the equal ones (TFLite Micro's partial sort keeps the earlier entry,
    so the earlier class and the earlier pick, first) and cut at max_detections.
    Scratch: decoded boxes, candidate flags and the state (best anchor, insertion
    row, finished, count)."""
    from tvm.script import tirx as T

    n, rows = anchors, options.max_detections
    offset = scores - options.num_classes
    classes = options.num_classes
    picks = min(options.detections_per_class, n)
    score_threshold = T.float32(options.score_threshold)
    zero = T.float32(0.0)
    decode, suppress = _macros(n, options.iou_threshold)

    @T.prim_func(s_tir=True)
    def detection_postprocess(
        enc: T.Buffer((1, n, coords), "float32"),
        cls: T.Buffer((1, n, scores), "float32"),
        anc: T.Buffer((n, 4), "float32"),
        scl: T.Buffer((4,), "float32"),
        boxes: T.Buffer((1, rows, 4), "float32"),
        labels: T.Buffer((1, rows), "float32"),
        confidences: T.Buffer((1, rows), "float32"),
        count: T.Buffer((1,), "float32"),
        decoded: T.Buffer((n, 4), "float32"),
        active: T.Buffer((n,), "int8"),
        state: T.Buffer((4,), "int32"),
    ):
        T.func_attr({"tir.noalias": True})
        with T.sblock("root"):  # noqa: SIM117 (TVMScript opens one block per with)
            with T.sblock("detection_postprocess"):  # one opaque step: nothing to schedule
                T.reads(enc[0, 0:n, 0:coords], cls[0, 0:n, 0:scores], anc[0:n, 0:4], scl[0:4])
                T.writes(boxes[0, 0:rows, 0:4], labels[0, 0:rows], confidences[0, 0:rows], count[0])
                for i in range(n):
                    decode(enc, anc, scl, decoded, i)
                for r in range(rows):
                    for k in range(4):
                        boxes[0, r, k] = zero
                    labels[0, r] = zero
                    confidences[0, r] = zero
                state[3] = 0
                for c in range(classes):
                    for j in range(n):
                        active[j] = T.Cast("int8", cls[0, j, offset + c] >= score_threshold)
                    state[2] = 0
                    for _p in range(picks):
                        if state[2] == 0:
                            state[0] = -1
                            for j in range(n):
                                if active[j] != T.int8(0) and (
                                    state[0] < 0
                                    or cls[0, j, offset + c] > cls[0, state[0], offset + c]
                                ):
                                    state[0] = j
                            if state[0] < 0:
                                state[2] = 1
                            else:
                                s = T.bind(state[0])
                                score = T.bind(cls[0, s, offset + c])
                                state[1] = 0
                                for r in range(rows):
                                    if r < state[3] and confidences[0, r] >= score:
                                        state[1] = state[1] + 1
                                if state[1] < rows:
                                    for q in range(rows - 1):
                                        r = T.bind(rows - 1 - q)
                                        if r > state[1] and r <= state[3]:
                                            for k in range(4):
                                                boxes[0, r, k] = boxes[0, r - 1, k]
                                            labels[0, r] = labels[0, r - 1]
                                            confidences[0, r] = confidences[0, r - 1]
                                    for k in range(4):
                                        boxes[0, state[1], k] = decoded[s, k]
                                    labels[0, state[1]] = T.Cast("float32", c)
                                    confidences[0, state[1]] = score
                                    state[3] = T.min(state[3] + 1, rows)
                                suppress(decoded, active, s)
                count[0] = T.Cast("float32", state[3])

    return detection_postprocess


def scratch_shapes(options: DetectionOptions, anchors: int) -> list[tuple[tuple[int, ...], str]]:
    """The kernel's scratch outputs after the four the op returns."""
    if options.use_regular_nms:
        return [((anchors, 4), "float32"), ((anchors,), "int8"), ((4,), "int32")]
    return [
        ((anchors, 4), "float32"),
        ((anchors,), "float32"),
        ((anchors,), "int32"),
        ((anchors,), "int8"),
        ((3,), "int32"),
    ]


def anchors_array(values: np.ndarray) -> np.ndarray:
    """The anchors as float32 [anchors, 4]."""
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1, 4)


def scales_array(options: DetectionOptions) -> np.ndarray:
    """The kernel's scale input: y, x, h and w scales as float32."""
    scales = (options.y_scale, options.x_scale, options.h_scale, options.w_scale)
    return np.array(scales, np.float32)
