"""Pinned sha256 of trained model files.

Rewritten by scripts/train_screen_head.py (the frozen baseline head) and
scripts/finetune_screen_encoder.py (the fine-tuned encoder and its sidecar),
scripts/calibrate_screen.py (its calibration) and scripts/train_screen_prefilter.py (the
cascade's first stage).
"""

SCREEN_HEAD_SHA256 = "a727f474a2531102cf81cd9752c7841555590ca12e9a9228b95c43a8c6595732"
SCREEN_ENCODER_SHA256 = "c971f0e102adf92b0df2b37f33a9006a881c93108fb8a0abaa0dab03a6d0bf24"
SCREEN_ENCODER_SIDECAR_SHA256 = "8b262449fd8e4581f158bc6e8301afbc9978e6a466df1b51954a4fedfd5960a7"
SCREEN_CALIBRATION_SHA256 = "8d55517a42792c33b3bf564ae96dac27ae53140c2a49facf5481cad7fdb7a88c"
SCREEN_PREFILTER_SHA256 = "e459f186117a22de42795427044fc050126f5923828e68c2204c2b5281c1763d"
