"""Pinned sha256 of trained model files.

Rewritten by scripts/train_screen_head.py (the frozen baseline head) and
scripts/finetune_screen_encoder.py (the fine-tuned encoder and its sidecar),
scripts/calibrate_screen.py (its calibration) and scripts/train_screen_prefilter.py (the
cascade's first stage).
"""

SCREEN_HEAD_SHA256 = "a727f474a2531102cf81cd9752c7841555590ca12e9a9228b95c43a8c6595732"
SCREEN_ENCODER_SHA256 = "c971f0e102adf92b0df2b37f33a9006a881c93108fb8a0abaa0dab03a6d0bf24"
SCREEN_ENCODER_SIDECAR_SHA256 = "8b262449fd8e4581f158bc6e8301afbc9978e6a466df1b51954a4fedfd5960a7"
SCREEN_CALIBRATION_SHA256 = "e6cd1ca9eca41ef901328d9f5c4e5b5f20b807c33dfff118065824d4298d6b2d"
SCREEN_PREFILTER_SHA256 = "44ba48dad606c0e84c13bc46f0bdf4c3605657a4699fae7d20c314a7c4505f13"
