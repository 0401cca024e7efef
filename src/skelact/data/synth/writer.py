"""The exact NTU RGB+D ``.skeleton`` text format (Kinect v2 SDK output), written in bulk.

Layout: the frame count; per frame the body count; per body a line of its id and nine fields,
the joint count, and one line per joint with camera-space x y z, depth-image x y, colour-image
x y, the orientation quaternion w x y z and the tracking state. Lines end in CRLF like the
originals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skelact.data.synth.bodies import Body
from skelact.data.synth.rest_pose import NUM_JOINTS

#: Kinect v2 intrinsics (approximate): depth 512 x 424, colour 1920 x 1080, colour camera 5 cm off.
DEPTH_F, DEPTH_CX, DEPTH_CY = 365.5, 256.0, 212.0
COLOR_F, COLOR_CX, COLOR_CY, COLOR_BASELINE = 1063.0, 960.0, 540.0, 0.052


#: After the body id: clipped edges, hand states, restriction, lean, tracking state, then the
#: joint count line.
_BODY_FMT = "%d %d %d %d %d %d %.7G %.7G %d\r\n" + f"{NUM_JOINTS}\r\n"
_JOINT_FMT = "%.7G %.7G %.7G %.6G %.6G %.6G %.6G %.7G %.7G %.7G %.7G %d\r\n"
_JOINTS_FMT = _JOINT_FMT * NUM_JOINTS
_BLOCK_WIDTH = 9 + NUM_JOINTS * 12


def format_skeleton(bodies: Sequence[Body]) -> str:
    """The ``.skeleton`` text of a sample, built with one ``%`` format for the whole file.

    Numbers use 7 significant digits (%G), as the Kinect SDK's float printing does, which also
    yields upper-case scientific notation for tiny values (``-7.257856E-05``).
    """
    t = len(bodies[0].present)
    present = np.stack([b.present for b in bodies])  # (B, T)
    counts = present.sum(0)
    frame_idx, body_idx = np.nonzero(present.T)  # blocks in file order: frame-major, body order
    n = len(frame_idx)
    block = np.empty((n, _BLOCK_WIDTH))
    joints = block[:, 9:].reshape(n, NUM_JOINTS, 12)
    for k, b in enumerate(bodies):
        sel = body_idx == k
        f = frame_idx[sel]
        block[sel, :9] = b.fields[f]
        xyz = b.xyz[f]
        joints[sel, :, 0:3] = xyz
        z = np.maximum(xyz[..., 2], 0.1)
        joints[sel, :, 3] = DEPTH_CX + DEPTH_F * xyz[..., 0] / z
        joints[sel, :, 4] = DEPTH_CY - DEPTH_F * xyz[..., 1] / z
        joints[sel, :, 5] = COLOR_CX + COLOR_F * (xyz[..., 0] + COLOR_BASELINE) / z
        joints[sel, :, 6] = COLOR_CY - COLOR_F * xyz[..., 1] / z
        joints[sel, :, 7:11] = b.quat[f]
        joints[sel, :, 11] = b.state[f]
    block += 0.0  # turns -0.0 into 0.0 so that no "-0" is printed
    ids = np.stack([b.ids for b in bodies])[body_idx, frame_idx]
    pieces = [f"{t}\r\n"]
    block_no = 0
    for fr in range(t):
        pieces.append(f"{counts[fr]}\r\n")
        for _ in range(counts[fr]):
            pieces.append(f"{ids[block_no]} {_BODY_FMT}{_JOINTS_FMT}")
            block_no += 1
    return "".join(pieces) % tuple(block.ravel().tolist())
