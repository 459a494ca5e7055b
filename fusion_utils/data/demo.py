"""Synthetic demo cohort in the real PTB-XL and HAM10000 on-disk formats.

The book runs end to end on this cohort when the real datasets are absent. It is written in exactly
the published layouts, so :mod:`fusion_utils.data.ptbxl`, :mod:`fusion_utils.data.ham10000` and
:mod:`fusion_utils.data.manifest` read it with no special case::

    <outdir>/demo_cohort.json                      stamp: parameters and format version
    <outdir>/ptbxl/ptbxl_database.csv              all 28 real columns, real order and formats
    <outdir>/ptbxl/scp_statements.csv              the real statement table's 13 columns (subset of rows)
    <outdir>/ptbxl/records100/NNNNN/NNNNN_lr.{hea,dat}   WFDB (wfdb.wrsamp), 12 leads, fmt 16, mV, 100 Hz
    <outdir>/ptbxl/records500/NNNNN/NNNNN_hr.{hea,dat}   only with ``records500=True`` (5000 samples)
    <outdir>/ham10000/HAM10000_metadata.csv        7-column layout (LF), rows grouped by dx as in the real file
    <outdir>/ham10000/HAM10000_images_part_1/ISIC_NNNNNNN.jpg   first half of the ids (600x450 RGB JPEG)
    <outdir>/ham10000/HAM10000_images_part_2/ISIC_NNNNNNN.jpg   second half

Command line: ``python -m fusion_utils.data.demo OUTDIR [--n-ptbxl N] [--n-ham N] [--seed S] [--force]
[--records500] [--workers W]``. A re-run with the same parameters returns at once (the stamp); changed
parameters rebuild into a temporary folder that is renamed into place, so an interrupted build
never leaves a half cohort behind a valid stamp. The same arguments give the same bytes (every
record draws from its own ``numpy`` generator seeded by ``(seed, stream, index)``, so the bytes
do not depend on the number of worker processes either). At the default size the build takes about
53 s of CPU (ECG 8 s, images 43 s, neurokit2 templates 3 s), shared by two processes on two cores.
Two builds into the same folder at the same time are not supported.

Class proportions
-----------------
Each class gets ``floor + (1 - K * floor) * real share`` with ``floor = 0.08`` (K classes), rounded
by largest remainder, so every class has a usable number of records at the book's size (400 + 400):

======  ==========  ===========  =====  ==========  ===========
PTB-XL  real share  demo share   HAM    real share  demo share
======  ==========  ===========  =====  ==========  ===========
NORM    0.558       0.415 (166)  nv     0.670       0.375 (150)
MI      0.156       0.174 (69)   mel    0.111       0.129 (52)
STTC    0.148       0.169 (68)   bkl    0.110       0.128 (51)
CD      0.105       0.143 (57)   bcc    0.051       0.103 (41)
HYP     0.033       0.100 (40)   akiec  0.033       0.094 (38)
..      ..          ..           vasc   0.014       0.086 (34)
..      ..          ..           df     0.011       0.085 (34)
======  ==========  ===========  =====  ==========  ===========

Counts in brackets: the book's default of 400 + 400 (:func:`class_counts`).
PTB-XL shares are among the 16,272 single-superclass records of the official v1.0.1 table. Every
demo PTB-XL record has exactly one diagnostic superclass (the paper's rule), so the requested
count is the usable count.

Image ambiguity
---------------
Real images do not decide every case, and a demo in which they do leaves metadata nothing to
add. A share ``IMAGE_AMBIGUITY`` (0.4 for both datasets) of the records (PTB-XL) or lesions
(HAM10000) is drawn as *ambiguous*: its signal or image shows the look of a class drawn from the
real class shares (most often NORM or nv, sometimes its own), while its label and metadata follow
its true class. Image features alone can then reach at most about 60% + 40% x (chance of the
right look) of the records, and metadata recovers part of the rest: a known, measurable fusion
effect. The table rows and metadata are unchanged by this choice (it draws from its own random
stream).

Metadata priors
---------------
Computed from the full real tables in ``../shared/data`` (PTB-XL: single-superclass records;
HAM10000: all 10,015 rows) and rounded. Metadata therefore carries class information by
construction, at about the real strength; the per-class tables (site, nurse, device, heart axis,
localization, dx_type) are in ``_PTBXL_PRIORS`` / ``_HAM_PRIORS`` below.

======  =========  ========  =======  =======  ====================
PTB-XL  age        P(sex=1)  height   weight   site 0/1/2/3/other
        mean (sd)  (female)  missing  missing
======  =========  ========  =======  =======  ====================
NORM    52.1 (17)  0.545     0.66     0.45     .43/.30/.22/.02/.04
MI      64.1 (13)  0.367     0.81     0.76     .51/.17/.26/.03/.03
STTC    64.9 (14)  0.576     0.65     0.61     .34/.34/.26/.03/.04
CD      64.0 (16)  0.389     0.70     0.61     .38/.26/.28/.03/.05
HYP     61.4 (16)  0.437     0.51     0.48     .28/.43/.20/.03/.06
======  =========  ========  =======  =======  ====================

Height is drawn by sex (male 174 +- 8 cm, female 163 +- 7 cm) and weight from a body-mass index
of 26 +- 4 (as in the real table, height and weight carry little class information apart from
their missingness). Age is missing in 0.4 % of the records; about 13 % of the records belong to a
patient seen before (same ``patient_id``, sex and height, later date, same fold, same class).

======  =========  =======  ==============================  ===================
HAM     age        P(male)  top localizations               age/sex/site unknown
        mean (sd)
======  =========  =======  ==============================  ===================
akiec   66.5 (11)  0.676    face .35, lower ext .20         0
bcc     66.8 (14)  0.617    back .36, face .20              0
bkl     64.3 (14)  0.570    face .29, back .18              0.009
df      53.0 (14)  0.548    lower ext .71, upper ext .21    0
mel     60.7 (15)  0.619    back .29, upper ext .19         0.002
nv      46.5 (15)  0.510    lower ext .22, back .21         0.007
vasc    51.4 (22)  0.486    trunk .22, abdomen .19          0
======  =========  =======  ==============================  ===================

HAM ages are multiples of 5 in [0, 85]; images per lesion follow ``1 + Binomial(3, p)`` with the
real per-class mean (nv 1.24 ... mel 1.81; 1.34 overall). Images of one lesion share the lesion's
metadata and appearance, seen with a different rotation, scale, framing, lighting and hair.

ECG signals
-----------
neurokit2's 12-lead ECGSYN model (``ecg_simulate(method="multileads")``) takes about 1-2 s per
record, too slow for a minute-long build, so it is run **once per class** (3 s at 500 Hz, 60 bpm,
no noise, class-specific ``ti``/``ai``/``bi`` wave parameters: deeper Q for MI, inverted T for
STTC, wide Q/R/S for CD, deeper S for HYP) and one beat per lead is kept as the class template.
Each record then varies its template cheaply and deterministically:

* per-class changes on top: MI pathological Q waves, reduced R and ST elevation in the infarct's
  territory (inferior, anterior or lateral, from the SCP code) with reciprocal depression; STTC
  ST depression in lateral/inferior leads and a variable T inversion; CD a QRS stretched to
  110-170 ms, RSR' in V1-V2 (RBBB), broad notched R in I/V5/V6 (LBBB), left axis (LAFB), long PR
  (1AVB); HYP QRS voltage x1.6-2.6 (precordial) with occasional strain, tall R in V1 (RVH),
  broad P (LAO/LAE);
* heart rate per record (class-dependent mean, sinus arrhythmia beat to beat), with the ST-T
  and P-R parts of each beat scaled by the RR interval (Bazett-like) and the QRS not;
* per-lead amplitude jitter; the limb leads III, aVR, aVL and aVF derived from I and II
  (Einthoven/Goldberger), as an electrocardiograph does;
* baseline wander (0.05-0.4 Hz), white noise and occasional burst noise, consistent with the
  ``baseline_drift``/``static_noise``/``burst_noise`` columns.

Beats are synthesised at 500 Hz and decimated to 100 Hz (``scipy.signal.resample_poly``), like
PTB-XL's own ``records100``. ``records500`` is not written by default (it adds ~48 MB and time at
the book's size and the book reads 100 Hz); ``records500=True`` writes it, and
``filename_hr`` is filled either way, as in the real table. ``extra_beats``, ``pacemaker`` and
``electrodes_problems`` stay empty because the signals have none of them.

Lesion images
-------------
Procedural dermoscopy-like pictures (NumPy + Pillow): a skin-toned, unevenly lit background with
fine texture, an optional dark dermatoscope ring and hairs, and a lesion whose size, border
irregularity, softness, colours and texture depend on dx: mel large, irregular, multicoloured
(black, dark brown, blue-grey, regression white); nv round, regular, uniform brown with a faint
network; bcc pink, pearly, with arborising red vessels; vasc red-purple lacunae; df small, light
brown ring around a white scar-like centre; bkl waxy tan with ridges and comedo-like dots; akiec
scaly red-pink with white scale. JPEG quality 90 (the real files use quality-100 tables; 90 keeps
the cohort small).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_utils.io import atomic_write_json, atomic_write_text

__all__ = [
    "CLASS_FLOOR",
    "FORMAT_VERSION",
    "HAM_CLASSES",
    "HAM_COLUMNS",
    "PTBXL_CLASSES",
    "PTBXL_COLUMNS",
    "STAMP_FILE",
    "class_counts",
    "ham_table",
    "main",
    "ptbxl_table",
    "render_lesion",
    "synthesize_ecg",
    "write_demo_cohort",
]

FORMAT_VERSION = 2
"""Bumped whenever the written bytes change for the same parameters (forces a rebuild)."""

STAMP_FILE = "demo_cohort.json"
CLASS_FLOOR = 0.08
"""Minimum share of every class (see the module docstring)."""

IMAGE_AMBIGUITY: dict[str, float] = {"ptbxl": 0.4, "ham10000": 0.4}
"""Share of records whose signal or image shows another class's look (see the module docstring)."""

PTBXL_CLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
HAM_CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

PTBXL_COLUMNS: tuple[str, ...] = (
    "ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device",
    "recording_date", "report", "scp_codes", "heart_axis", "infarction_stadium1",
    "infarction_stadium2", "validated_by", "second_opinion", "initial_autogenerated_report",
    "validated_by_human", "baseline_drift", "static_noise", "burst_noise", "electrodes_problems",
    "extra_beats", "pacemaker", "strat_fold", "filename_lr", "filename_hr",
)
"""``ptbxl_database.csv`` columns in the real file's order (``ecg_id`` is the index)."""

HAM_COLUMNS: tuple[str, ...] = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
"""``HAM10000_metadata.csv`` columns (the 7-column Kaggle / ISIC-2018 layout)."""

LEADS: tuple[str, ...] = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

_REAL_SHARE = {
    "ptbxl": {"NORM": 9083, "MI": 2538, "STTC": 2406, "CD": 1709, "HYP": 536},
    "ham10000": {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142},
}

# --------------------------------------------------------------------------------------------
# Priors (from the real tables; see the module docstring)
# --------------------------------------------------------------------------------------------

_DEVICES = ("AT-6     6", "AT-6 C", "AT-6 C 5.0", "AT-6 C 5.3", "AT-6 C 5.5", "AT-6 C 5.6",
            "AT-6 C 5.8", "AT-60    3", "CS-12", "CS-12   E", "CS100    3")
_AXES = (None, "MID", "LAD", "ALAD", "RAD", "ARAD", "AXL", "AXR", "SAG")
_NURSES = (None, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0)
_VALIDATORS = (None, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)

_PTBXL_PRIORS: dict[str, dict[str, Any]] = {
    "NORM": dict(
        age=(52.1, 17.3), female=0.545, height_nan=0.66, weight_nan=0.45, hr=(68.0, 11.0),
        site=(.426, .298, .216, .018, .042), nurse=(.059, .370, .248, .055, .029, .029, .030,
                                                    .031, .030, .031, .029, .029, .030),
        device=(.104, .014, .002, .004, .194, .003, .035, .043, .171, .242, .188),
        axis=(.457, .425, .103, .002, .006, 0, .003, .003, 0),
        validated_by=(.438, .289, .219, .027, .008, .006, .004, .006, .003, .001),
        second_opinion=.028, autogenerated=.231, human=.821,
        codes={"NORM": 1.0},
        likelihood={100.0: .77, 80.0: .17, 50.0: .048, 35.0: .006, 15.0: .006},
        extra={},
    ),
    "MI": dict(
        age=(64.1, 12.7), female=0.367, height_nan=0.81, weight_nan=0.76, hr=(72.0, 13.0),
        site=(.512, .173, .255, .032, .028), nurse=(.059, .501, .272, .011, .017, .018, .020,
                                                    .016, .020, .015, .015, .019, .017),
        device=(.076, .028, .004, .002, .098, .001, .022, .059, .194, .058, .459),
        axis=(.245, .343, .296, .094, .011, .008, .001, .001, 0),
        validated_by=(.540, .170, .257, .016, .005, .004, .003, .002, .002, .002),
        second_opinion=.030, autogenerated=.496, human=.562,
        codes={"IMI": .40, "ASMI": .28, "ILMI": .08, "AMI": .06, "ALMI": .06, "LMI": .04,
               "INJAS": .04, "IPLMI": .04},
        likelihood={100.0: .53, 15.0: .24, 50.0: .18, 80.0: .03, 35.0: .02},
        extra={"ABQRS": .55, "QWAVE": .07},
    ),
    "STTC": dict(
        age=(64.9, 14.5), female=0.576, height_nan=0.65, weight_nan=0.61, hr=(76.0, 15.0),
        site=(.337, .335, .258, .033, .037), nurse=(.070, .323, .287, .014, .039, .041, .036,
                                                    .036, .032, .028, .030, .031, .033),
        device=(.124, .031, .005, .002, .192, .002, .048, .047, .207, .057, .285),
        axis=(.424, .420, .133, .009, .006, 0, .005, .002, 0),
        validated_by=(.362, .328, .261, .024, .007, .004, .005, .003, .004, .002),
        second_opinion=.015, autogenerated=.325, human=.727,
        codes={"NDT": .46, "NST_": .17, "ISCAL": .09, "ISCIN": .05, "ISCIL": .04, "ISCAS": .04,
               "DIG": .04, "ISC_": .04, "LNGQT": .03, "ISCLA": .04},
        likelihood={100.0: .87, 50.0: .11, 80.0: .02},
        extra={"STD_": .11, "NT_": .08, "LOWT": .07, "INVT": .04},
    ),
    "CD": dict(
        age=(64.0, 16.0), female=0.389, height_nan=0.70, weight_nan=0.61, hr=(70.0, 14.0),
        site=(.380, .263, .280, .028, .049), nurse=(.075, .364, .308, .016, .028, .027, .027,
                                                    .025, .023, .029, .026, .029, .022),
        device=(.105, .026, .003, .001, .163, .001, .039, .044, .233, .112, .271),
        axis=(.223, .221, .286, .226, .020, .010, .012, .001, .001),
        validated_by=(.401, .256, .283, .029, .012, .005, .006, .003, .004, .001),
        second_opinion=.012, autogenerated=.314, human=.733,
        codes={"LAFB": .28, "CLBBB": .21, "IRBBB": .20, "CRBBB": .10, "1AVB": .09, "IVCD": .07,
               "WPW": .05},
        likelihood={100.0: .96, 80.0: .03, 50.0: .01},
        extra={"ABQRS": .08},
    ),
    "HYP": dict(
        age=(61.4, 15.8), female=0.437, height_nan=0.51, weight_nan=0.48, hr=(72.0, 12.0),
        site=(.278, .433, .203, .030, .056), nurse=(.086, .261, .254, .017, .039, .043, .049,
                                                    .037, .037, .037, .049, .043, .049),
        device=(.112, .022, .002, .011, .295, .007, .062, .034, .170, .058, .228),
        axis=(.524, .356, .095, .002, 0, .002, .015, .006, 0),
        validated_by=(.297, .422, .203, .024, .021, .007, .011, .004, .007, .004),
        second_opinion=.056, autogenerated=.261, human=.778,
        codes={"LVH": .86, "LAO/LAE": .08, "RAO/RAE": .04, "SEHYP": .02},
        likelihood={100.0: .27, 50.0: .26, 15.0: .23, 35.0: .16, 80.0: .08},
        extra={"VCLVH": .54, "STD_": .06},
    ),
}

_MI_STADIUM = {None: 0.0, "unknown": .60, "Stadium I": .023, "Stadium I-II": .001,
               "Stadium II": .019, "Stadium II-III": .217, "Stadium III": .14}

_REPORTS = {  # report texts in the real table's style (German or English), by class
    "NORM": ("sinus rhythm. normal ecg.", "sinusrhythmus lagetyp normal normales ekg",
             "sinusrhythmus lagetyp normal normales ekg 4.46                          "
             "unbestÄtigter bericht", "sinus rhythm. no definite pathology."),
    "MI": ("trace only requested.", "sinus rhythm. probable old myocardial infarction."),
    "STTC": ("sinusrhythmus lagetyp normal unspezifisches abnormes t 4.46                          "
             "unbestÄtigter bericht", "sinusrhythmus lagetyp normal unspezifisches abnormales t",
             "sinus rhythm. st-t changes, possibly ischaemic."),
    "CD": ("trace only requested.", "sinus rhythm. intraventricular conduction disturbance."),
    "HYP": ("sinusrhythmus lagetyp normal mÄssige amplitudenkriterien fÜr linkshypertrophie 4.46"
            "                          unbestÄtigter bericht",
            "sinus rhythm. voltages are high in chest leads suggesting lvh. otherwise normal ecg.",
            "sinus rhythm. voltages are high in limb leads suggesting lvh. otherwise normal ecg."),
}
_CODE_REPORTS = {  # added to the class's texts for these codes
    "IMI": ("sinusrhythmus lagetyp normal qrs(t) abnorm    inferiorer infarkt     alter unbest. "
            "4.46                          unbestÄtigter bericht",
            "sinusrhythmus lagetyp normal qrs(t) abnorm    inferiorer infarkt     wahrscheinlich "
            "alt 4.46                          unbestÄtigter bericht"),
    "ASMI": ("sinusrhythmus qrs(t) abnorm    anteroseptaler infarkt     wahrscheinlich alt",),
    "LAFB": ("sinus rhythm. left axis deviation. left anterior fascicular block.",),
    "CRBBB": ("sinus rhythm. right bundle branch block.",),
    "IRBBB": ("sinus rhythm. incomplete right bundle branch block.",),
    "CLBBB": ("sinusrhythmus linkstyp kompletter linksschenkelblock",),
    "1AVB": ("sinus rhythm. first degree av block.",),
}

_NOISE_FLAGS = {
    "baseline_drift": (0.07, (" , V6", " , V1", " , II-AVF", " , alles")),
    "static_noise": (0.15, (" , I-AVR,  ", " , I-AVF,  ", " , alles,  ")),
    "burst_noise": (0.03, ("alles", "I-AVF", "V1")),
}

# Rows of the official scp_statements.csv for every code the demo writes (same 13 columns).
_SCP_STATEMENTS_CSV = """\
,description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass,Statement Category,SCP-ECG Statement Description,AHA code,aECG REFID,CDISC Code,DICOM Code
NDT,non-diagnostic T abnormalities,1.0,1.0,,STTC,STTC,other ST-T descriptive statements,non-diagnostic T abnormalities,,,,
NST_,non-specific ST changes,1.0,1.0,,STTC,NST_,Basic roots for coding ST-T changes and abnormalities,non-specific ST changes,145,MDC_ECG_RHY_STHILOST,,
DIG,digitalis-effect,1.0,1.0,,STTC,STTC,other ST-T descriptive statements,suggests digitalis-effect,205,,,
LNGQT,long QT-interval,1.0,1.0,,STTC,STTC,other ST-T descriptive statements,long QT-interval,148,,,
NORM,normal ECG,1.0,,,NORM,NORM,Normal/abnormal,normal ECG,1,,,F-000B7
IMI,inferior myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferior myocardial infarction,161,,,
ASMI,anteroseptal myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anteroseptal myocardial infarction,165,,,
LVH,left ventricular hypertrophy,1.0,,,HYP,LVH,Ventricular Hypertrophy,left ventricular hypertrophy,142,,C71076,
LAFB,left anterior fascicular block,1.0,,,CD,LAFB/LPFB,Intraventricular and intra-atrial Conduction disturbances,left anterior fascicular block,101,MDC_ECG_BEAT_BLK_ANT_L_HEMI,C62267,D3-33140
ISC_,non-specific ischemic,1.0,,,STTC,ISC_,Basic roots for coding ST-T changes and abnormalities,ischemic ST-T changes,226,,,
IRBBB,incomplete right bundle branch block,1.0,,,CD,IRBBB,Intraventricular and intra-atrial Conduction disturbances,incomplete right bundle branch block,105,MDC_ECG_BEAT_RBB_BLK_INCOMP,C71048,D3-33112
1AVB,first degree AV block,1.0,,,CD,_AVB,"Sinus node dysfunction, atrial and AV-conduction defects",first degree AV block,,MDC_ECG_RHY_AV_HEART_BLK_DEG_1,C111088,
IVCD,non-specific intraventricular conduction disturbance (block),1.0,,,CD,IVCD,Intraventricular and intra-atrial Conduction disturbances,non-specific intraventricular conduction disturbance,107,MDC_ECG_BEAT_BLK_IVCD,C62271,D3-33000
ISCAL,ischemic in anterolateral leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in anterolateral leads,,,,
CRBBB,complete right bundle branch block,1.0,,,CD,CRBBB,Intraventricular and intra-atrial Conduction disturbances,(complete) right bundle branch block,106,MDC_ECG_BEAT_RBB_BLK_COMP,C62270,D3-33110
CLBBB,complete left bundle branch block,1.0,,,CD,CLBBB,Intraventricular and intra-atrial Conduction disturbances,(complete) left bundle branch block,104,MDC_ECG_BEAT_LBB_BLK_COMP,C62269,D3-33120 or 122752
ILMI,inferolateral myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferolateral myocardial infarction,,,,
LAO/LAE,left atrial overload/enlargement,1.0,,,HYP,LAO/LAE,Atrial statements,left atrial overload/enlargement,140,,,
AMI,anterior myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anterior myocardial infarction,160,,,
ALMI,anterolateral myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anterolateral myocardial infarction,,,,
ISCIN,ischemic in inferior leads,1.0,,,STTC,ISCI,ischemic ST-T changes,in inferior leads,,,,
INJAS,subendocardial injury in anteroseptal leads,1.0,,,MI,AMI,ischemic ST-T changes compatible with subendocardial injury,in anteroseptal leads,,,,
LMI,lateral myocardial infarction,1.0,,,MI,LMI,Myocardial Infarction,lateral myocardial infarction,163,,,
ISCIL,ischemic in inferolateral leads,1.0,,,STTC,ISCI,ischemic ST-T changes,in inferolateral leads,,,,
ISCAS,ischemic in anteroseptal leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in anteroseptal leads,,,,
ISCLA,ischemic in lateral leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in lateral leads,,,,
RAO/RAE,right atrial overload/enlargement,1.0,,,HYP,RAO/RAE,Atrial statements,right atrial overload/enlargement,141,,,
WPW,Wolf-Parkinson-White syndrome,1.0,,,CD,WPW,Intraventricular and intra-atrial Conduction disturbances,Wolff-Parkinson-White syndrome,,MDC_ECG_RHY_WPW_UNK,C35132,
IPLMI,inferoposterolateral myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferoposterolateral myocardial infarction,,,,
SEHYP,septal hypertrophy,1.0,,,HYP,SEHYP,Ventricular Hypertrophy,septal hypertrophy,,,,
ABQRS,abnormal QRS,,1.0,,,,Normal/abnormal,abnormal QRS,,,,
STD_,non-specific ST depression,,1.0,,,,Basic roots for coding ST-T changes and abnormalities,non-specific ST depression,502,,,F-38278
VCLVH,voltage criteria (QRS) for left ventricular hypertrophy,,1.0,,,,Ventricular Hypertrophy,voltage criteria (QRS) for left ventricular hypertrophy,,,,
QWAVE,Q waves present,,1.0,,,,Other QRS morphology descriptive statements,Q waves present,,,,
LOWT,low amplitude T-waves,,1.0,,,,other ST-T descriptive statements,low amplitude T-waves,366,,,
NT_,non-specific T-wave changes,,1.0,,,,Basic roots for coding ST-T changes and abnormalities,non-specific T-wave changes,,,,
INVT,inverted T-waves,,1.0,,,,other ST-T descriptive statements,inverted T-waves,367,,,
SR,sinus rhythm,,,1.0,,,Statements related to impulse formation (abnormalities),sinus rhythm,20,MDC_ECG_RHY_SINUS_RHY,,
STACH,sinus tachycardia,,,1.0,,,Statements related to impulse formation (abnormalities),sinus tachycardia,21,MDC_ECG_RHY_SINUS_TACHY,,
SBRAD,sinus bradycardia,,,1.0,,,Statements related to impulse formation (abnormalities),sinus bradycardia,22,MDC_ECG_RHY_SINUS_BRADY,,
"""

_LOCALIZATIONS = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
                  "lower extremity", "neck", "scalp", "trunk", "unknown", "upper extremity")
_DX_TYPES = ("confocal", "consensus", "follow_up", "histo")
_HAM_PRIORS: dict[str, dict[str, Any]] = {
    #        age (mean, sd), P(male), P(age/sex/site unknown), images per lesion, dx_type, localization
    "akiec": dict(age=(66.5, 11.5), male=.676, unknown=0.0, per_lesion=1.43, dx_type=(0, 0, 0, 1),
                  loc=(.015, 0, .089, .037, .009, .346, 0, 0, .040, .199, .031, .043, .003, 0, .190)),
    "bcc": dict(age=(66.8, 13.7), male=.617, unknown=0.0, per_lesion=1.57, dx_type=(0, 0, 0, 1),
                loc=(.035, 0, .362, .091, 0, .196, .008, 0, .004, .113, .027, .037, .021, .010, .095)),
    "bkl": dict(age=(64.3, 14.1), male=.570, unknown=.009, per_lesion=1.51,
                dx_type=(.063, .240, 0, .697),
                loc=(.038, 0, .184, .067, .005, .290, .001, .002, .013, .158, .028, .031, .066, .012,
                     .095)),
    "df": dict(age=(53.0, 13.6), male=.548, unknown=0.0, per_lesion=1.58,
               dx_type=(0, .522, 0, .478),
               loc=(.035, 0, .017, 0, 0, 0, .017, .009, 0, .713, 0, 0, 0, 0, .209)),
    "mel": dict(age=(60.7, 15.2), male=.619, unknown=.002, per_lesion=1.81, dx_type=(0, 0, 0, 1),
                loc=(.059, 0, .291, .061, .015, .093, .025, 0, .001, .173, .026, .013, .042, .007,
                     .191)),
    "nv": dict(age=(46.5, 15.2), male=.510, unknown=.007, per_lesion=1.24,
               dx_type=(0, .075, .552, .373),
               loc=(.128, .001, .213, .030, .004, .015, .042, .007, .008, .221, .012, .007, .185,
                    .022, .098)),
    "vasc": dict(age=(51.4, 21.6), male=.486, unknown=0.0, per_lesion=1.45,
                 dx_type=(0, .528, 0, .472),
                 loc=(.190, 0, .155, .042, 0, .056, 0, 0, .035, .190, .021, .014, .218, 0, .077)),
}
_HAM_FILE_ORDER = ("bkl", "nv", "df", "mel", "vasc", "bcc", "akiec")  # dx order of the real file
_FIRST_IMAGE_NUMBER = 24306  # ISIC_0024306 is the first image of the real release

# Random streams: every record / lesion / image draws from default_rng([seed, stream, index]).
_S_PTBXL_TABLE, _S_HAM_TABLE, _S_ECG, _S_LESION, _S_VIEW, _S_LOOK = 1, 2, 3, 4, 5, 6


def _look(dataset: str, label: str, seed: int, index: int) -> str:
    """The class whose appearance record ``index`` shows: its own, or (ambiguous) a prior draw.

    With probability ``IMAGE_AMBIGUITY[dataset]`` the look is drawn from the real class shares
    (so it may still be the record's own class); metadata always follows the true label. This
    bounds what the image alone can know and gives fusion a known, measurable effect.
    """
    rng = _rng(seed, _S_LOOK, index)
    if rng.random() >= IMAGE_AMBIGUITY[dataset]:
        return label
    share = _REAL_SHARE[dataset]
    classes = tuple(share)
    total = float(sum(share.values()))
    return str(_choice(rng, classes, [share[c] / total for c in classes]))


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, int(index)])


def _choice(rng: np.random.Generator, options: Sequence[Any], probs: Sequence[float]) -> Any:
    p = np.asarray(probs, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


# --------------------------------------------------------------------------------------------
# Class counts
# --------------------------------------------------------------------------------------------

def class_counts(n: int, dataset: str, floor: float = CLASS_FLOOR) -> dict[str, int]:
    """Records per class for a cohort of ``n`` (real proportions with a floor; sums to ``n``).

    Parameters
    ----------
    n : int
        Cohort size; at least the number of classes (5 for PTB-XL, 7 for HAM10000).
    dataset : {"ptbxl", "ham10000"}
    floor : float
        Minimum share of each class, ``0 <= floor <= 1 / K``.

    Examples
    --------
    >>> class_counts(400, "ptbxl")
    {'NORM': 166, 'MI': 69, 'STTC': 68, 'CD': 57, 'HYP': 40}
    """
    if dataset not in _REAL_SHARE:
        raise ValueError(f"unknown dataset {dataset!r}: expected 'ptbxl' or 'ham10000'")
    classes = PTBXL_CLASSES if dataset == "ptbxl" else HAM_CLASSES
    k = len(classes)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < k:
        raise ValueError(f"{dataset} cohort size must be an integer >= {k} (one record per class); "
                         f"got {n!r}")
    if not 0.0 <= floor <= 1.0 / k:
        raise ValueError(f"floor must lie in [0, 1/{k}]; got {floor}")
    real = np.array([_REAL_SHARE[dataset][c] for c in classes], dtype=float)
    share = floor + (1.0 - k * floor) * real / real.sum()
    raw = share * n
    counts = np.maximum(np.floor(raw).astype(int), 1)
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    i = 0
    while counts.sum() < n:
        counts[order[i % k]] += 1
        i += 1
    while counts.sum() > n:  # only when the minimum of 1 pushed the total over
        j = int(np.argmax(counts))
        counts[j] -= 1
    return {c: int(v) for c, v in zip(classes, counts, strict=True)}


# --------------------------------------------------------------------------------------------
# PTB-XL table
# --------------------------------------------------------------------------------------------

def _draw_ptbxl(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (database table, per-record synthesis parameters), both indexed by ``ecg_id``."""
    rng = _rng(seed, _S_PTBXL_TABLE)
    counts = class_counts(n, "ptbxl")
    labels = np.array([c for c, k in counts.items() for _ in range(k)], dtype=object)
    labels = labels[rng.permutation(n)]
    ecg_ids = np.arange(1, n + 1)

    # recording dates ascending with ecg_id, as in the real table
    t0 = pd.Timestamp("1984-11-09").value // 10**9
    t1 = pd.Timestamp("2001-06-11").value // 10**9
    days = np.sort(rng.integers(0, (t1 - t0) // 86400, size=n))
    hours = np.clip(np.round(rng.normal(11.8, 3.0, size=n)), 0, 23).astype(int)
    secs = t0 + days * 86400 + hours * 3600 + rng.integers(0, 3600, size=n)
    dates = pd.to_datetime(secs, unit="s").strftime("%Y-%m-%d %H:%M:%S")

    patient_pool = rng.permutation(np.arange(1, max(21798, 3 * n)))
    rows: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    seen: dict[str, list[int]] = {c: [] for c in PTBXL_CLASSES}  # row indices of first visits
    next_patient = 0
    for i, (ecg_id, label) in enumerate(zip(ecg_ids, labels, strict=True)):
        pr = _PTBXL_PRIORS[label]
        repeat = bool(seen[label]) and rng.random() < 0.13
        if repeat:
            first = rows[seen[label][int(rng.integers(len(seen[label])))]]
            patient_id, female, height = first["patient_id"], first["sex"], first["height"]
            years = int(dates[i][:4]) - int(first["recording_date"][:4])
            age = min(first["age"] + years, 95.0)  # NaN stays NaN
            fold = first["strat_fold"]
        else:
            patient_id = float(patient_pool[next_patient])
            next_patient += 1
            female = int(rng.random() < pr["female"])
            age = float(np.clip(np.round(rng.normal(*pr["age"])), 2, 95))
            if rng.random() < 0.004:
                age = np.nan
            height = np.nan
            fold = 0  # assigned per patient below
            seen[label].append(i)
        weight = np.nan
        if rng.random() >= pr["weight_nan"]:
            # height is (almost) only recorded together with weight, as in the real table
            p_height = min(1.0, (1 - pr["height_nan"]) / (1 - pr["weight_nan"]))
            if not repeat and rng.random() < p_height:
                height = float(np.round(rng.normal(163, 7) if female else rng.normal(174, 8)))
            ref = height if not np.isnan(height) else (163.0 if female else 174.0)
            weight = float(np.clip(np.round(rng.normal(26.0, 4.0) * (ref / 100) ** 2), 35, 160))

        site_i = _choice(rng, (0, 1, 2, 3, -1), pr["site"])
        site = float(site_i) if site_i >= 0 else float(rng.integers(4, 51))
        if rng.random() < 0.001:
            site = np.nan
        nurse = _choice(rng, _NURSES, pr["nurse"])
        device = _choice(rng, _DEVICES, pr["device"])
        axis = _choice(rng, _AXES, pr["axis"])
        validated_by = _choice(rng, _VALIDATORS, pr["validated_by"])

        code = _choice(rng, tuple(pr["codes"]), tuple(pr["codes"].values()))
        likelihood = _choice(rng, tuple(pr["likelihood"]), tuple(pr["likelihood"].values()))
        hr = float(np.clip(rng.normal(*pr["hr"]), 42, 130))
        rhythm = "SBRAD" if hr < 55 else ("STACH" if hr > 100 else "SR")
        scp: dict[str, float] = {code: likelihood}
        for extra, p in pr["extra"].items():
            if rng.random() < p:
                scp[extra] = 0.0
        scp[rhythm] = 0.0
        stadium1 = _choice(rng, tuple(_MI_STADIUM), tuple(_MI_STADIUM.values())) if label == "MI" else None
        stadium2 = "Stadium III" if label == "MI" and stadium1 == "Stadium I" and rng.random() < 0.3 else None
        flags = {k: (_choice(rng, vals, [1.0] * len(vals)) if rng.random() < p else None)
                 for k, (p, vals) in _NOISE_FLAGS.items()}
        reports = _REPORTS[label] + _CODE_REPORTS.get(code, ())
        report = reports[int(rng.integers(len(reports)))]
        if rhythm != "SR" and report.startswith("sinus rhythm"):
            report = report.replace("sinus rhythm", "sinus bradycardia" if rhythm == "SBRAD"
                                    else "sinus tachycardia", 1)

        folder = f"{(ecg_id // 1000) * 1000:05d}"
        rows.append({
            "ecg_id": int(ecg_id), "patient_id": patient_id, "age": age, "sex": int(female),
            "height": height, "weight": weight,
            "nurse": np.nan if nurse is None else nurse, "site": site, "device": device,
            "recording_date": dates[i], "report": report,
            "scp_codes": "{" + ", ".join(f"'{k}': {v!r}" for k, v in scp.items()) + "}",
            "heart_axis": axis, "infarction_stadium1": stadium1, "infarction_stadium2": stadium2,
            "validated_by": np.nan if validated_by is None else validated_by,
            "second_opinion": bool(rng.random() < pr["second_opinion"]),
            "initial_autogenerated_report": bool(rng.random() < pr["autogenerated"]),
            "validated_by_human": bool(rng.random() < pr["human"]),
            "baseline_drift": flags["baseline_drift"], "static_noise": flags["static_noise"],
            "burst_noise": flags["burst_noise"], "electrodes_problems": None, "extra_beats": None,
            "pacemaker": None, "strat_fold": fold,
            "filename_lr": f"records100/{folder}/{ecg_id:05d}_lr",
            "filename_hr": f"records500/{folder}/{ecg_id:05d}_hr",
        })
        params.append({"ecg_id": int(ecg_id), "label": label, "code": code, "hr": hr,
                       "stadium": stadium1, "drift": flags["baseline_drift"] is not None,
                       "static": flags["static_noise"] is not None, "burst": flags["burst_noise"]})

    # strat_fold 1-10 per patient, stratified by class (repeat visits share their fold)
    for label in PTBXL_CLASSES:
        firsts = seen[label]
        offset = int(rng.integers(10))
        for j, row_i in enumerate(np.array(firsts)[rng.permutation(len(firsts))]):
            rows[row_i]["strat_fold"] = (j + offset) % 10 + 1
    by_patient = {r["patient_id"]: r["strat_fold"] for r in rows if r["strat_fold"]}
    for r in rows:
        r["strat_fold"] = by_patient[r["patient_id"]]

    table = pd.DataFrame(rows, columns=list(PTBXL_COLUMNS)).set_index("ecg_id")
    for col in ("infarction_stadium1", "infarction_stadium2", "heart_axis", "baseline_drift",
                "static_noise", "burst_noise", "electrodes_problems", "extra_beats", "pacemaker"):
        table[col] = table[col].astype(object)
    return table, pd.DataFrame(params).set_index("ecg_id")


def ptbxl_table(n: int, seed: int = 0) -> pd.DataFrame:
    """The demo ``ptbxl_database.csv`` as a DataFrame (index ``ecg_id``), without writing files.

    Parameters
    ----------
    n : int
        Number of records (>= 5), split into classes by :func:`class_counts`.
    seed : int
        Random seed; the same ``(n, seed)`` always gives the same table.
    """
    return _draw_ptbxl(n, seed)[0]


# --------------------------------------------------------------------------------------------
# ECG synthesis
# --------------------------------------------------------------------------------------------

_FS_HI = 500
_BEAT = np.arange(-250, 250) / _FS_HI  # template time axis (s), R peak at 0
_INDEP = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")  # leads synthesised; the rest derived
_TARGET_QRS_PP = np.array([0.9, 1.3, 1.3, 2.0, 2.1, 2.0, 1.7, 1.3])  # mV, QRS peak to peak
_TARGET_P = np.array([0.08, 0.12, 0.07, 0.08, 0.08, 0.08, 0.08, 0.08])   # mV, largest |P|
_TARGET_T = np.array([0.22, 0.32, 0.15, 0.5, 0.5, 0.42, 0.32, 0.24])     # mV, largest |T|
_NK_CLASS_WAVES: dict[str, dict[str, tuple[float, ...]]] = {
    # neurokit2 ECGSYN wave parameters (P, Q, R, S, T): angles ti (deg), amplitudes ai, widths bi
    "NORM": {},
    "MI": {"ai": (1.2, -14.0, 26.0, -7.5, 0.75), "bi": (0.25, 0.14, 0.1, 0.1, 0.4)},
    "STTC": {"ai": (1.2, -5.0, 30.0, -7.5, -0.5)},
    "CD": {"ti": (-70.0, -25.0, 0.0, 30.0, 110.0), "bi": (0.25, 0.2, 0.2, 0.2, 0.4),
           "ai": (1.2, -5.0, 24.0, -9.0, 0.75)},
    "HYP": {"ai": (1.2, -5.0, 30.0, -12.0, 0.75)},
}


@functools.lru_cache(maxsize=1)
def _templates() -> dict[str, np.ndarray]:
    """One beat per class and independent lead from neurokit2, in mV (shape (500, 8), 500 Hz)."""
    import neurokit2 as nk

    templates: dict[str, np.ndarray] = {}
    for cls in PTBXL_CLASSES:
        ecg = nk.ecg_simulate(duration=3, sampling_rate=_FS_HI, heart_rate=60, heart_rate_std=0,
                              noise=0, method="multileads", random_state=0,
                              **_NK_CLASS_WAVES[cls])
        # ECGSYN's lead II has a tiny QRS under a huge T wave; lead I's shape stands in for it
        # (II then differs from I by amplitude, per-record jitter and the class changes).
        x = ecg[["I", "I", "V1", "V2", "V3", "V4", "V5", "V6"]].to_numpy(float)
        beat = x[_FS_HI - 250:_FS_HI + 250].copy()  # ECGSYN starts at an R peak: beat 2 of 3
        start, end = beat[:15].mean(0), beat[-15:].mean(0)
        ramp = np.linspace(0.0, 1.0, len(beat))[:, None]
        beat -= start + (end - start) * ramp  # linear detrend: isoelectric at both ends
        # ECGSYN's per-lead P and T amplitudes are far from real ones (P and T taller than the
        # QRS in V1 and V6): keep each wave's shape and set its size to a typical adult value.
        half = 0.10 if cls == "CD" else 0.06
        t = _BEAT[:, None]
        p_w = _smoothstep((-half - t) / 0.03)
        t_w = _smoothstep((t - half) / 0.03)
        parts = (beat * p_w, beat * (1.0 - p_w - t_w), beat * t_w)
        targets = (_TARGET_P, _TARGET_QRS_PP, _TARGET_T)
        beat = np.zeros_like(beat)
        for k, (part, target) in enumerate(zip(parts, targets, strict=True)):
            size = part.max(0) - part.min(0) if k == 1 else np.abs(part).max(0)
            beat += part * (target / np.maximum(size, 1e-9))
        templates[cls] = beat
    return templates


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _gauss(t: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - mu) / sd) ** 2)


_MI_TERRITORY = {  # (delta on I, delta on II) for limb leads, precordial weights V1..V6
    "inferior": ((-0.3, 1.0), (0, 0, 0, 0, 0, 0)),
    "anterior": ((0.1, -0.3), (0.6, 1.0, 1.0, 0.7, 0.2, 0)),
    "lateral": ((1.0, 0.3), (0, 0, 0, 0.3, 0.9, 1.0)),
}
_MI_CODE_TERRITORY = {"IMI": ["inferior"], "ILMI": ["inferior", "lateral"],
                      "IPLMI": ["inferior", "lateral"], "ASMI": ["anterior"], "AMI": ["anterior"],
                      "INJAS": ["anterior"], "ALMI": ["anterior", "lateral"], "LMI": ["lateral"]}


def _territory_vector(territories: Sequence[str]) -> np.ndarray:
    v = np.zeros(8)
    for t in territories:
        (d1, d2), pre = _MI_TERRITORY[t]
        v += np.array([d1, d2, *pre])
    return np.clip(v, -1.0, 1.0)


def _record_beat(label: str, code: str, stadium: str | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, float, float, float]:
    """Per-record beat (500, 8) and its timing factors (QRS stretch, PR factor, QT factor)."""
    beat = _templates()[label].copy()
    t = _BEAT[:, None]
    qrs_w = _smoothstep((0.075 - np.abs(t)) / 0.03)         # QRS window
    st_w = _smoothstep((t - 0.05) / 0.03) * _smoothstep((0.36 - t) / 0.08)  # ST segment to T end
    t_w = _smoothstep((t - 0.10) / 0.05) * _smoothstep((0.48 - t) / 0.05)   # T wave
    lead_amp = rng.lognormal(0.0, 0.15, size=8)
    qrs_gain = np.ones(8)
    t_gain = rng.uniform(0.8, 1.2, size=8)
    st = np.zeros(8)
    add = np.zeros_like(beat)
    stretch = rng.uniform(0.92, 1.08)
    pr_factor = rng.uniform(0.95, 1.05)
    qt_factor = rng.uniform(0.97, 1.03)

    if label == "MI":
        terr = _territory_vector(_MI_CODE_TERRITORY.get(code, ["inferior"]))
        acute = stadium in ("Stadium I", "Stadium I-II", "Stadium II")
        elev = rng.uniform(0.15, 0.35) if acute else rng.uniform(0.06, 0.18)
        st += elev * terr
        involved = np.clip(terr, 0, 1)
        qrs_gain *= 1.0 - 0.45 * involved                       # lost R
        add -= (involved * rng.uniform(0.25, 0.5)) * _gauss(t, -0.028, 0.011)  # pathological Q
        if not acute:
            t_gain *= 1.0 - 1.6 * involved * rng.uniform(0.5, 1.0)  # T inversion in old MI
    elif label == "STTC":
        inferior = code in ("ISCIN", "ISCIL")
        depth = rng.uniform(0.06, 0.16)
        vec = (np.array([0.3, 1.0, 0, 0, 0, 0.2, 0.6, 0.8]) if inferior
               else np.array([1.0, 0.4, 0, 0, 0.3, 0.8, 1.0, 1.0]))
        st -= depth * vec
        t_gain *= rng.uniform(0.4, 1.2)
        if code == "LNGQT":
            qt_factor *= rng.uniform(1.15, 1.3)
    elif label == "CD":
        wide = code in ("CLBBB", "CRBBB", "IVCD", "WPW")
        stretch = rng.uniform(1.0, 1.25) if wide else rng.uniform(0.82, 0.95)
        if code in ("CRBBB", "IRBBB"):
            amp = rng.uniform(0.4, 0.8) * (1.0 if code == "CRBBB" else 0.5)
            add[:, 2:4] += amp * _gauss(t, 0.045, 0.014)            # R' in V1-V2
            add[:, [0, 7]] -= 0.5 * amp * _gauss(t, 0.05, 0.018)    # broad S in I, V6
        elif code == "CLBBB":
            add[:, [0, 6, 7]] += rng.uniform(0.3, 0.6) * _gauss(t, 0.035, 0.02)  # notched broad R
            add[:, 2:4] -= rng.uniform(0.4, 0.8) * _gauss(t, 0.03, 0.025)      # deep wide S V1-V2
            t_gain[[0, 6, 7]] *= -0.6                                         # discordant T
        elif code == "LAFB":
            qrs_gain[1] *= rng.uniform(-0.6, -0.2)                   # left axis: II negative
            qrs_gain[0] *= rng.uniform(1.2, 1.5)
        elif code == "1AVB":
            pr_factor *= rng.uniform(1.6, 2.1)
        elif code == "WPW":
            add[:, :] += 0.25 * np.sign(beat[250]) * _gauss(t, -0.045, 0.02)  # delta wave
            pr_factor *= 0.7
    elif label == "HYP":
        qrs_gain *= np.array([1.3, 1.3, 2.0, 2.2, 1.8, 1.9, 2.2, 2.0]) * rng.uniform(0.85, 1.2)
        if code == "RVH":
            add[:, 2] += 0.8 * _gauss(_BEAT, 0.0, 0.015)
        if code in ("LAO/LAE", "RAO/RAE"):
            add[:, 1] += 0.1 * _gauss(_BEAT, -0.17, 0.03)                 # broad / tall P in II
            add[:, 2] -= 0.08 * _gauss(_BEAT, -0.14, 0.025)               # terminal negative P V1
        if rng.random() < 0.4:                                        # strain pattern
            strain = np.array([1.0, 0.3, 0, 0, 0, 0.5, 1.0, 1.0])
            st -= 0.08 * strain
            t_gain *= 1.0 - 1.5 * strain
    beat = beat + (qrs_gain - 1.0) * beat * qrs_w + (t_gain - 1.0) * beat * t_w
    beat = (beat + add + st * st_w) * lead_amp
    return beat, float(stretch), float(pr_factor), float(qt_factor)


def _place_beats(beat: np.ndarray, r_times: np.ndarray, rr: np.ndarray, stretch: float,
                 pr_factor: float, qt_factor: float, n: int, fs: int) -> np.ndarray:
    """Sum time-warped copies of ``beat`` (template at 500 Hz) with R peaks at ``r_times``."""
    out = np.zeros((n, beat.shape[1]))
    q = 0.05  # half QRS on the template axis
    for r, interval in zip(r_times, rr, strict=True):
        k = np.sqrt(interval) * qt_factor                 # ST-T scale (Bazett-like)
        kp = np.sqrt(np.sqrt(interval)) * pr_factor       # P-R scale
        lo = r - (q * stretch + (0.5 - q) * kp)
        hi = r + (q * stretch + (0.5 - q) * k)
        i0, i1 = max(0, int(np.floor(lo * fs))), min(n, int(np.ceil(hi * fs)) + 1)
        if i1 <= i0:
            continue
        dt = np.arange(i0, i1) / fs - r
        tau = np.where(np.abs(dt) <= q * stretch, dt / stretch,
                       np.where(dt > 0, q + (dt - q * stretch) / k, -q + (dt + q * stretch) / kp))
        for j in range(beat.shape[1]):
            out[i0:i1, j] += np.interp(tau, _BEAT, beat[:, j], left=0.0, right=0.0)
    return out


def synthesize_ecg(label: str, code: str, *, hr: float = 70.0, stadium: str | None = None,
                   drift: bool = False, static: bool = False, burst: str | None = None,
                   rng: np.random.Generator | None = None,
                   records500: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Synthesize one 10-s 12-lead ECG in mV: ``(x100 (1000, 12), x500 (5000, 12) or None)``.

    Parameters
    ----------
    label : str
        Superclass (``NORM``, ``MI``, ``STTC``, ``CD``, ``HYP``).
    code : str
        Its SCP code (chooses the territory of an MI, the kind of conduction disturbance, ...).
    hr : float
        Mean heart rate (beats per minute).
    stadium : str, optional
        ``infarction_stadium1`` (acute stages get more ST elevation).
    drift, static : bool
        Stronger baseline wander / white noise (the table's ``baseline_drift`` / ``static_noise``).
    burst : str, optional
        ``burst_noise`` value: ``"alles"`` (all leads), ``"I-AVF"`` (limb leads) or ``"V1"``.
    rng : numpy.random.Generator, optional
        Source of randomness (default: a fresh unseeded generator).
    records500 : bool
        Also return the 500 Hz version (its own white noise; the 100 Hz signal does not change).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None)
        Leads in PTB-XL's header order (I, II, III, AVR, AVL, AVF, V1..V6).
    """
    from scipy.signal import resample_poly

    if label not in PTBXL_CLASSES:
        raise ValueError(f"unknown PTB-XL superclass {label!r}: expected one of {PTBXL_CLASSES}")
    rng = rng if rng is not None else np.random.default_rng()
    beat, stretch, pr_factor, qt_factor = _record_beat(label, code, stadium, rng)
    n_hi = 10 * _FS_HI
    rr_mean = 60.0 / hr
    r_times = [-rng.uniform(0.0, rr_mean)]
    rr: list[float] = []
    phase = rng.uniform(0, 2 * np.pi)
    while r_times[-1] < 10.6:
        interval = rr_mean * (1 + 0.04 * np.sin(2 * np.pi * 0.25 * r_times[-1] + phase)
                              + rng.normal(0, 0.015))
        rr.append(interval)
        r_times.append(r_times[-1] + interval)
    rr.append(rr[-1])
    indep = _place_beats(beat, np.array(r_times), np.array(rr), stretch, pr_factor, qt_factor,
                         n_hi, _FS_HI)
    t = np.arange(n_hi) / _FS_HI
    wander_amp = rng.uniform(0.02, 0.08) * (3.0 if drift else 1.0)
    for j in range(indep.shape[1]):
        for _ in range(2):
            f = rng.uniform(0.05, 0.4)
            indep[:, j] += wander_amp * rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t
                                                                        + rng.uniform(0, 2 * np.pi))
    if burst is not None:
        cols = {"alles": list(range(8)), "I-AVF": [0, 1]}.get(burst, [2])
        start = rng.uniform(0, 9.0)
        seg = slice(int(start * _FS_HI), int((start + rng.uniform(0.4, 1.2)) * _FS_HI))
        indep[seg, cols] += rng.normal(0, rng.uniform(0.1, 0.3), size=(seg.stop - seg.start, len(cols)))
    # white noise on the electrode leads; the limb leads are derived afterwards, so Einthoven's
    # and Goldberger's identities hold exactly, as on a digital electrocardiograph
    sigma = rng.uniform(0.005, 0.02) * (3.0 if static else 1.0)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    lo = resample_poly(indep, 1, 5, axis=0)
    lo = lo + sigma * rng.standard_normal(lo.shape)
    hi = indep + sigma * noise_rng.standard_normal(indep.shape) if records500 else None
    return _twelve_leads(lo), (None if hi is None else _twelve_leads(hi))


def _twelve_leads(indep: np.ndarray) -> np.ndarray:
    """(n, 8) leads I, II, V1..V6 -> (n, 12) in PTB-XL's order (III, aVR, aVL, aVF derived)."""
    lead_i, lead_ii = indep[:, 0], indep[:, 1]
    return np.column_stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2,
                            lead_i - lead_ii / 2, lead_ii - lead_i / 2, indep[:, 2:]])


def _write_record(base: Path, signal: np.ndarray, fs: int) -> None:
    import wfdb

    base.parent.mkdir(parents=True, exist_ok=True)
    signal = np.clip(np.round(signal, 3), -32.0, 32.0)
    wfdb.wrsamp(base.name, fs=fs, units=["mV"] * 12, sig_name=list(LEADS), p_signal=signal,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                write_dir=str(base.parent))


def _write_ptbxl_records(folder: Path, n: int, seed: int, records500: bool,
                         part: tuple[int, int] = (0, 1)) -> int:
    """Write the WFDB records of every ``part[1]``-th record from ``part[0]``; return the count."""
    table, params = _draw_ptbxl(n, seed)
    done = 0
    for ecg_id, p in params.iloc[part[0]::part[1]].iterrows():
        look, code, stadium = p["label"], p["code"], p["stadium"]
        shown = _look("ptbxl", look, seed, int(ecg_id))
        if shown != look:  # an ambiguous record: another class's morphology, its own metadata
            pr = _PTBXL_PRIORS[shown]
            look_rng = _rng(seed, _S_LOOK + 100, int(ecg_id))
            code = _choice(look_rng, tuple(pr["codes"]), tuple(pr["codes"].values()))
            stadium = (_choice(look_rng, tuple(_MI_STADIUM), tuple(_MI_STADIUM.values()))
                       if shown == "MI" else None)
            look = shown
        x100, x500 = synthesize_ecg(look, code, hr=p["hr"], stadium=stadium,
                                    drift=p["drift"], static=p["static"], burst=p["burst"],
                                    rng=_rng(seed, _S_ECG, int(ecg_id)), records500=records500)
        _write_record(folder / table.at[ecg_id, "filename_lr"], x100, 100)
        if x500 is not None:
            _write_record(folder / table.at[ecg_id, "filename_hr"], x500, 500)
        done += 1
    return done


def _write_ptbxl_tables(folder: Path, n: int, seed: int) -> None:
    atomic_write_text(folder / "ptbxl_database.csv", _draw_ptbxl(n, seed)[0].to_csv())
    atomic_write_text(folder / "scp_statements.csv", _SCP_STATEMENTS_CSV)


# --------------------------------------------------------------------------------------------
# HAM10000 table
# --------------------------------------------------------------------------------------------

def _draw_ham(n: int, seed: int) -> pd.DataFrame:
    """The metadata table plus a private ``lesion_index_`` column (rows in the file's order)."""
    rng = _rng(seed, _S_HAM_TABLE)
    counts = class_counts(n, "ham10000")
    lesion_numbers = rng.permutation(max(7629, 2 * n))
    image_numbers = np.sort(rng.choice(max(10015, 2 * n), size=n, replace=False)) + _FIRST_IMAGE_NUMBER
    image_numbers = image_numbers[rng.permutation(n)]
    rows: list[dict[str, Any]] = []
    lesion_index = 0
    for dx in _HAM_FILE_ORDER:
        pr = _HAM_PRIORS[dx]
        p_extra = (pr["per_lesion"] - 1.0) / 3.0
        remaining = counts[dx]
        while remaining > 0:
            k = min(remaining, 1 + int(rng.binomial(3, p_extra)))
            remaining -= k
            if rng.random() < pr["unknown"]:
                age, sex, loc = np.nan, "unknown", "unknown"
            else:
                age = float(np.clip(5 * np.round(rng.normal(*pr["age"]) / 5), 0, 85))
                sex = "male" if rng.random() < pr["male"] else "female"
                loc = _choice(rng, _LOCALIZATIONS, pr["loc"])
            dx_type = _choice(rng, _DX_TYPES, pr["dx_type"])
            lesion_id = f"HAM_{lesion_numbers[lesion_index]:07d}"
            for _ in range(k):
                rows.append({"lesion_id": lesion_id, "image_id": "", "dx": dx, "dx_type": dx_type,
                             "age": age, "sex": sex, "localization": loc,
                             "lesion_index_": lesion_index})
            lesion_index += 1
    df = pd.DataFrame(rows)
    df["image_id"] = [f"ISIC_{v:07d}" for v in image_numbers[: len(df)]]
    return df


def ham_table(n: int, seed: int = 0) -> pd.DataFrame:
    """The demo ``HAM10000_metadata.csv`` as a DataFrame (7 columns), without writing files.

    Parameters
    ----------
    n : int
        Number of images (>= 7), split into classes by :func:`class_counts`.
    seed : int
        Random seed; the same ``(n, seed)`` always gives the same table.
    """
    return _draw_ham(n, seed)[list(HAM_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Lesion images
# --------------------------------------------------------------------------------------------

_W, _H = 600, 450

_LESION_GEOMETRY = {  # radius range (px), border irregularity, edge softness range (px)
    "mel": ((135, 200), 0.20, (3, 12)),
    "nv": ((85, 155), 0.035, (2, 5)),
    "bcc": ((80, 145), 0.09, (6, 12)),
    "vasc": ((55, 110), 0.07, (3, 6)),
    "df": ((50, 90), 0.04, (8, 14)),
    "bkl": ((105, 175), 0.11, (2, 5)),
    "akiec": ((90, 155), 0.13, (6, 12)),
}

_PALETTE = {  # RGB colours mixed inside the lesion
    "mel": ((75, 45, 35), (35, 25, 28), (105, 110, 135), (150, 100, 70), (205, 190, 190)),
    "nv": ((135, 90, 60), (110, 70, 45), (160, 115, 80)),
    "bcc": ((215, 150, 150), (235, 215, 215), (175, 120, 130)),
    "vasc": ((165, 40, 60), (115, 35, 85), (190, 80, 95)),
    "df": ((160, 110, 80), (228, 212, 200), (140, 95, 70)),
    "bkl": ((175, 135, 95), (150, 110, 75), (195, 160, 120)),
    "akiec": ((200, 110, 100), (232, 222, 212), (180, 90, 85)),
}


def _smooth_field(rng: np.random.Generator, cells: tuple[int, int],
                  size: tuple[int, int] = (_W, _H)) -> np.ndarray:
    """Smooth random field in about [-1, 1], ``size`` (width, height), from a coarse grid."""
    from PIL import Image

    small = rng.standard_normal((cells[1], cells[0])).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize(size, Image.Resampling.BICUBIC))


def _lesion_layer(dx: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RGBA float layer (H, W, 4) of one lesion centred in the frame (alpha in [0, 1]) and the
    patient's skin colour (RGB)."""
    from PIL import Image, ImageDraw

    tone = rng.uniform(0, 1)
    skin = (1 - tone) * np.array([238, 198, 182]) + tone * np.array([200, 148, 118])
    skin = (skin + rng.normal(0, 6, size=3)).astype(np.float32)

    (r_lo, r_hi), irregular, (s_lo, s_hi) = _LESION_GEOMETRY[dx]
    radius = rng.uniform(r_lo, r_hi)
    aspect = rng.uniform(0.7, 1.0)
    angle0 = rng.uniform(0, np.pi)
    # drawn at half resolution (coordinates in full-resolution pixels), then upsampled
    w2, h2 = _W // 2, _H // 2
    yy, xx = np.mgrid[0:h2, 0:w2].astype(np.float32) * 2.0
    x, y = xx - _W / 2, yy - _H / 2
    u = x * np.cos(angle0) + y * np.sin(angle0)
    v = (-x * np.sin(angle0) + y * np.cos(angle0)) / aspect
    d = np.hypot(u, v)
    theta = np.arctan2(v, u)
    r_theta = np.ones_like(theta)
    for k in range(2, 9):
        r_theta += irregular * rng.normal(0, 1.0) / np.sqrt(k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    if dx in ("mel", "akiec", "bkl"):
        for k in range(9, 24):
            r_theta += 0.35 * irregular * rng.normal(0, 1.0) / np.sqrt(k) * np.cos(
                k * theta + rng.uniform(0, 2 * np.pi))
    rr = radius * np.clip(r_theta, 0.5, 1.6)
    softness = rng.uniform(s_lo, s_hi)
    alpha = _smoothstep((rr - d) / softness + 0.5)
    rel = d / rr  # 0 at the centre, 1 on the border

    pal = np.array(_PALETTE[dx], dtype=np.float32) + rng.normal(0, 8, size=(len(_PALETTE[dx]), 3))
    f1, f2, f3 = (_smooth_field(rng, c, (w2, h2)) for c in ((6, 5), (10, 8), (16, 12)))
    fine = _smooth_field(rng, (150, 112), (w2, h2))
    pal = pal.astype(np.float32)
    colour = np.broadcast_to(pal[0], (h2, w2, 3)).astype(np.float32).copy()

    def mix(c: np.ndarray, w: np.ndarray) -> None:
        w = np.clip(w, 0, 1)[..., None]
        colour[:] = colour * (1 - w) + c * w

    if dx == "mel":
        mix(pal[1], 0.9 * (f1 + 0.3))                       # black / dark patches
        mix(pal[2], 1.2 * (f2 - 0.5))                       # blue-grey veil
        mix(pal[3], 1.0 * (f3 - 0.2) + 0.5 * (rel - 0.6))   # lighter brown towards the edge
        mix(pal[4], 1.5 * (-f1 - 0.9))                      # regression (white) areas
        colour += 18 * fine[..., None]
    elif dx == "nv":
        mix(pal[1], 0.6 * (1 - rel) - 0.1 + 0.2 * f1)       # darker centre
        mix(pal[2], 0.5 * (rel - 0.7))
        net = 0.5 + 0.5 * np.sin(u / rng.uniform(5, 8)) * np.sin(v / rng.uniform(5, 8))
        colour -= 14 * net[..., None]                       # faint pigment network
        colour += 6 * fine[..., None]
    elif dx == "bcc":
        mix(pal[1], 0.7 * (f2 - 0.1))                       # pearly white areas
        mix(pal[2], 0.6 * f1)
        colour += 8 * fine[..., None]
    elif dx == "vasc":
        mix(pal[1], 0.8 * (f2 + 0.1))                       # purple
        mix(pal[2], 0.6 * (rel - 0.7))                      # lighter rim
        lac = np.sin(u / rng.uniform(7, 11) + f3 * 2) * np.sin(v / rng.uniform(7, 11) + f2 * 2)
        colour -= 25 * np.clip(lac, 0, 1)[..., None]        # dark red lacunae
    elif dx == "df":
        mix(pal[1], 1.6 * (0.55 - rel) / 0.4 + 0.3 * f1)    # white scar-like centre
        mix(pal[2], 2.0 * (rel - 0.75))                     # darker peripheral ring
        colour += 6 * fine[..., None]
    elif dx == "bkl":
        ridges = np.sin(8 * f2 + u / 9) * np.sin(8 * f3 + v / 11)
        colour -= 16 * ridges[..., None]                    # cerebriform ridges
        mix(pal[1], 0.7 * f1)
        mix(pal[2], 0.7 * (f3 - 0.3))
    elif dx == "akiec":
        mix(pal[2], 0.7 * f1)
        scale = np.clip(3.0 * (fine - 0.6), 0, 1)           # white scale
        mix(pal[1], scale * 0.9)
        colour += 12 * fine[..., None]

    overlay = Image.new("RGBA", (w2, h2), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    if dx in ("bcc", "akiec"):  # arborising / dotted vessels
        for _ in range(int(rng.integers(4, 10)) if dx == "bcc" else 0):
            px, py = w2 / 2 + rng.normal(0, radius * 0.2), h2 / 2 + rng.normal(0, radius * 0.2)
            ang = rng.uniform(0, 2 * np.pi)
            for _ in range(int(rng.integers(8, 20))):
                ang += rng.normal(0, 0.5)
                nx, ny = px + 3 * np.cos(ang), py + 3 * np.sin(ang)
                draw.line([(px, py), (nx, ny)], fill=(170, 30, 45, 200), width=1)
                px, py = nx, ny
        if dx == "akiec":
            for _ in range(int(rng.integers(20, 50))):
                px, py = w2 / 2 + rng.normal(0, radius * 0.22), h2 / 2 + rng.normal(0, radius * 0.22)
                draw.ellipse([px - 1, py - 1, px + 1, py + 1], fill=(175, 40, 50, 170))
    if dx in ("bkl", "nv", "mel"):  # comedo-like / globules
        n_dots = {"bkl": (10, 30), "nv": (0, 12), "mel": (5, 25)}[dx]
        for _ in range(int(rng.integers(*n_dots))):
            px, py = w2 / 2 + rng.normal(0, radius * 0.22), h2 / 2 + rng.normal(0, radius * 0.22)
            s = rng.uniform(0.8, 2.0)
            fill = (235, 225, 200, 200) if dx == "bkl" and rng.random() < 0.5 else (45, 30, 25, 190)
            draw.ellipse([px - s, py - s, px + s, py + s], fill=fill)
    over = np.asarray(overlay, dtype=np.float32)
    oa = over[..., 3:4] / 255.0 * (alpha[..., None] > 0.3)
    colour = colour * (1 - oa) + over[..., :3] * oa
    opacity = 0.75 if dx == "bcc" else 0.95
    half = np.concatenate([np.clip(colour, 0, 255), (alpha * opacity)[..., None]], axis=-1)
    full = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(half[..., c], dtype=np.float32),
                                                mode="F").resize((_W, _H), Image.Resampling.BICUBIC))
                     for c in range(4)], axis=-1)
    return full, skin


def render_lesion(dx: str, lesion_rng: np.random.Generator | int,
                  view_rng: np.random.Generator | int | None = None):  # -> PIL.Image.Image
    """Render one dermoscopy-like 600x450 RGB image of a ``dx`` lesion.

    Parameters
    ----------
    dx : str
        HAM10000 diagnosis (``akiec``, ``bcc``, ``bkl``, ``df``, ``mel``, ``nv``, ``vasc``).
    lesion_rng : numpy.random.Generator or int
        Randomness of the lesion itself (shape, colours, skin tone): images of one lesion share it.
    view_rng : numpy.random.Generator or int, optional
        Randomness of this picture (rotation, scale, framing, lighting, hair, dermatoscope ring).

    Returns
    -------
    PIL.Image.Image
    """
    if dx not in HAM_CLASSES:
        raise ValueError(f"unknown HAM10000 diagnosis {dx!r}: expected one of {HAM_CLASSES}")
    layer, skin = _lesion_layer(dx, np.random.default_rng(lesion_rng))
    return _photograph(layer, skin, np.random.default_rng(view_rng))


def _photograph(layer: np.ndarray, base: np.ndarray, vr: np.random.Generator):
    """Place a lesion layer on skin of colour ``base`` as seen in one picture."""
    from PIL import Image, ImageDraw, ImageFilter

    # the lesion seen from this picture's viewpoint
    rgba = Image.fromarray(np.clip(np.round(np.concatenate([layer[..., :3], layer[..., 3:] * 255], -1)),
                                   0, 255).astype(np.uint8), mode="RGBA")
    scale = vr.uniform(0.9, 1.1)
    rgba = rgba.rotate(vr.uniform(0, 360), resample=Image.Resampling.BICUBIC,
                       translate=(vr.normal(0, 20), vr.normal(0, 15)))
    if abs(scale - 1) > 1e-3:
        w, h = int(_W * scale), int(_H * scale)
        big = rgba.resize((w, h), Image.Resampling.BICUBIC)
        canvas = Image.new("RGBA", (_W, _H), (0, 0, 0, 0))
        canvas.paste(big, ((_W - w) // 2, (_H - h) // 2))
        rgba = canvas
    les = np.asarray(rgba, dtype=np.float32)

    light = 1.0 + 0.07 * _smooth_field(vr, (4, 3)) + vr.uniform(-0.06, 0.06)
    skin = base[None, None, :] * light[..., None] + 5 * _smooth_field(vr, (60, 45))[..., None]
    skin += 10 * np.clip(_smooth_field(vr, (8, 6)), 0, None)[..., None] * np.array(
        [0.6, -0.4, -0.4], dtype=np.float32)
    a = les[..., 3:4] / 255.0
    img = skin * (1 - a) + les[..., :3] * light[..., None] * a

    if vr.random() < 0.35:  # dermatoscope ring
        yy, xx = np.mgrid[0:_H, 0:_W].astype(np.float32)
        rad = vr.uniform(0.5, 0.65) * _W
        ring = _smoothstep((np.hypot(xx - _W / 2, yy - _H / 2) - rad) / 25.0)
        img = img * (1 - 0.9 * ring[..., None])
    pic = Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), mode="RGB")
    if vr.random() < 0.3:  # hairs
        draw = ImageDraw.Draw(pic)
        for _ in range(int(vr.integers(2, 12))):
            px, py = vr.uniform(0, _W), vr.uniform(0, _H)
            ang = vr.uniform(0, 2 * np.pi)
            pts = []
            for _ in range(int(vr.integers(15, 40))):
                ang += vr.normal(0, 0.08)
                px, py = px + 8 * np.cos(ang), py + 8 * np.sin(ang)
                pts.append((px, py))
            draw.line(pts, fill=(45, 35, 30), width=int(vr.integers(1, 3)))
    return pic.filter(ImageFilter.GaussianBlur(vr.uniform(0.6, 1.2)))


def _write_ham_images(folder: Path, n: int, seed: int, part: tuple[int, int] = (0, 1)) -> int:
    """Write the images of every ``part[1]``-th lesion from ``part[0]``; return the count."""
    df = _draw_ham(n, seed)
    numbers = df["image_id"].str[5:].astype(int).to_numpy()
    cut = np.sort(numbers)[(len(df) + 1) // 2 - 1]  # part 1: the first half of the ids
    mine = df["lesion_index_"].to_numpy() % part[1] == part[0]
    cached: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None
    done = 0
    for row, number in zip(df[mine].itertuples(index=False), numbers[mine], strict=True):
        sub = "HAM10000_images_part_1" if number <= cut else "HAM10000_images_part_2"
        lesion = int(row.lesion_index_)
        if cached is None or cached[0] != lesion:  # rows of one lesion are adjacent
            shown = _look("ham10000", row.dx, seed, lesion)  # one look per lesion
            cached = (lesion, _lesion_layer(shown, _rng(seed, _S_LESION, lesion)))
        pic = _photograph(*cached[1], _rng(seed, _S_VIEW, int(number)))
        out = folder / sub / f"{row.image_id}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        pic.save(out, format="JPEG", quality=90)
        done += 1
    return done


def _write_ham_table(folder: Path, n: int, seed: int) -> None:
    df = _draw_ham(n, seed)
    atomic_write_text(folder / "HAM10000_metadata.csv", df[list(HAM_COLUMNS)].to_csv(index=False))


def _build(root: Path, n_ptbxl: int, n_ham: int, seed: int, records500: bool, workers: int) -> None:
    """Write both datasets under ``root``; records and images are shared among ``workers``."""
    ptbxl, ham = root / "ptbxl", root / "ham10000"
    ptbxl.mkdir(parents=True, exist_ok=True)
    ham.mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        _write_ptbxl_records(ptbxl, n_ptbxl, seed, records500)
        _write_ham_images(ham, n_ham, seed)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: safe whatever the parent imported (torch, threads); every record has its own
        # seed, so the bytes do not depend on the number of workers.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            jobs = [pool.submit(_write_ptbxl_records, ptbxl, n_ptbxl, seed, records500, (i, workers))
                    for i in range(workers)]
            jobs += [pool.submit(_write_ham_images, ham, n_ham, seed, (i, 2 * workers))
                     for i in range(2 * workers)]
            for job in jobs:
                job.result()
    _write_ptbxl_tables(ptbxl, n_ptbxl, seed)
    _write_ham_table(ham, n_ham, seed)


# --------------------------------------------------------------------------------------------
# The cohort
# --------------------------------------------------------------------------------------------

def _stamp(n_ptbxl: int, n_ham: int, seed: int, records500: bool) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "generator": "fusion_utils.data.demo",
            "n_ptbxl": int(n_ptbxl), "n_ham": int(n_ham), "seed": int(seed),
            "records500": bool(records500)}


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_demo_cohort(outdir: str | os.PathLike[str], n_ptbxl: int = 400, n_ham: int = 400,
                      seed: int = 0, *, force: bool = False, records500: bool = False,
                      workers: int | None = None) -> dict[str, Path]:
    """Write the synthetic cohort: ``<outdir>/ptbxl`` and ``<outdir>/ham10000``.

    Parameters
    ----------
    outdir : path-like
        Folder that receives ``ptbxl/``, ``ham10000/`` and the stamp ``demo_cohort.json``.
    n_ptbxl, n_ham : int
        Number of ECG records (>= 5) and lesion images (>= 7).
    seed : int
        Random seed; the same arguments write the same bytes.
    force : bool
        Rebuild even when the stamp says the cohort is already there, and overwrite
        ``ptbxl/``/``ham10000/`` folders that this function did not write.
    records500 : bool
        Also write ``records500/`` (500 Hz); off by default (see the module docstring).
    workers : int, optional
        Processes that write records and images (default: 1 for small cohorts, else up to 2).
        The bytes written do not depend on it.

    Returns
    -------
    dict
        ``{"ptbxl": Path, "ham10000": Path}``.

    Raises
    ------
    FileExistsError
        If ``outdir`` holds a ``ptbxl`` or ``ham10000`` folder without a demo stamp (for example
        the real data) and ``force`` is false.
    """
    for name, value, k in (("n_ptbxl", n_ptbxl, 5), ("n_ham", n_ham, 7)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < k:
            raise ValueError(f"{name} must be an integer >= {k} (one record per class); got {value!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    outdir = Path(outdir)
    paths = {"ptbxl": outdir / "ptbxl", "ham10000": outdir / "ham10000"}
    stamp_path = outdir / STAMP_FILE
    wanted = _stamp(n_ptbxl, n_ham, seed, records500)
    current = _read_stamp(stamp_path)
    if not force and current == wanted and all(p.is_dir() for p in paths.values()):
        return paths
    if not force and current is None:
        foreign = [str(p) for p in paths.values() if p.exists()]
        if foreign:
            raise FileExistsError(f"{', '.join(foreign)} exist(s) but {stamp_path} is missing: not a "
                                  "demo cohort written by fusion_utils.data.demo (or an interrupted "
                                  "one). Pass force=True (--force) to overwrite, or choose another "
                                  "folder.")

    outdir.mkdir(parents=True, exist_ok=True)
    for stale in [*outdir.glob(".demo_cohort.*"), *outdir.glob(".demo_old.*")]:
        if stale.is_dir() and time.time() - stale.stat().st_mtime > 3600:  # an interrupted build
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo_cohort.", dir=outdir))
    try:
        if workers is None:
            workers = 1 if n_ptbxl + n_ham < 200 else min(2, os.cpu_count() or 1)
        _build(tmp, n_ptbxl, n_ham, seed, records500, max(1, int(workers)))
        if stamp_path.exists():
            stamp_path.unlink()  # no valid stamp while the folders are swapped
        trash = Path(tempfile.mkdtemp(prefix=".demo_old.", dir=outdir))
        for name, final in paths.items():
            if final.exists():
                os.replace(final, trash / name)
            os.replace(tmp / name, final)
        shutil.rmtree(trash, ignore_errors=True)
        atomic_write_json(stamp_path, wanted)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m fusion_utils.data.demo OUTDIR [--n-ptbxl N] [--n-ham N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m fusion_utils.data.demo",
        description="Write the synthetic demo cohort (PTB-XL and HAM10000 layouts) into OUTDIR.")
    parser.add_argument("outdir", help="folder that receives ptbxl/ and ham10000/")
    parser.add_argument("--n-ptbxl", type=int, default=400, help="ECG records (default 400)")
    parser.add_argument("--n-ham", type=int, default=400, help="lesion images (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--records500", action="store_true", help="also write 500 Hz records")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes to use (default: up to 2; the output does not depend on it)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        paths = write_demo_cohort(args.outdir, args.n_ptbxl, args.n_ham, args.seed,
                                  force=args.force, records500=args.records500,
                                  workers=args.workers)
    except (ValueError, FileExistsError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"demo cohort ready in {time.perf_counter() - start:.1f} s: "
          f"{paths['ptbxl']} ({args.n_ptbxl} ECGs), {paths['ham10000']} ({args.n_ham} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
