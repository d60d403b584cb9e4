
evt_0007ü­»×
billing-euRÕ
„
inv_2026_005012F-2026-005012cus_FR_60845"
EURð.*
EURð.2
2026-11-07:
2026-12-07B(https://pay.example.fr/i/inv_2026_005012L
cus_FR_60845Lucie Fabrelucie.fabre@example.fr2en-IE:Europe/ParisRFR