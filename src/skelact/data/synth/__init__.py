"""Synthetic NTU RGB+D raw data: ``.skeleton`` files in the exact Kinect v2 text format.

Why this exists: the NTU RGB+D data set cannot be downloaded without a licence agreement, yet the
whole pipeline (preprocess -> train -> test -> report) must run end to end on a fresh machine and
in CI.  This package writes files that a reader of real NTU files cannot tell apart by format, that
exercise the awkward cases real files have (empty frames, short-lived extra bodies, body-ID
changes, two-person actions, inferred joints, scientific-notation floats, CRLF line endings), and
whose classes differ by *learnable* motion, so a model trained on them must reach well above chance.

How a sample is made:

* every action class has a fixed motion program (a few joint-angle channels with a waveform,
  amplitude, frequency and phase), independent of the seed, so data sets drawn with different
  seeds share the same classes;
* the program drives forward kinematics of ``rest_pose.REST_POSE``, scaled per subject
  (``Pxxx``), seen from a per-camera yaw (``Cxxx``: -45/0/+45 degrees), at a per-setup distance,
  height and tilt (``Sxxx``), with a per-sample time warp, style jitter and Gaussian noise;
* classes at the end of the label range are two-person interactions (NTU's own actions 50-60 and
  106-120 when 60 or more classes are drawn);
* file names are chosen so that every benchmark split (NTU 60 xsub/xview, NTU 120 xsub/xset) has
  train and val samples of every class, and never collide with NTU's missing-skeleton lists.

Every file depends only on (seed, action, sample index), so generation is deterministic
(byte-identical files) and can run in parallel.

One module per step, in the order a sample is made: `plan` (names and splits), `motions` (class
programs that name joints), `kinematics` (forward kinematics), `bodies` (performers, scene,
clutter), `writer` (the text format) and `stage` (`synthesize`). The same samples in other
layouts and formats (``skelact synth --format``): `retarget` (NTU joints -> coco17, openpose25,
mediapipe33) and `formats` (2-D projection with scores, the outside-format writers).
"""

from skelact.data.synth.plan import SynthError
from skelact.data.synth.stage import SynthResult, SynthSettings, synthesize

__all__ = ["SynthError", "SynthResult", "SynthSettings", "synthesize"]
