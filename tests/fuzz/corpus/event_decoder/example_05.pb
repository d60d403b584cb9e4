
evt_0006üÄ«×
billing-euRÕ
„
inv_2026_004950F-2026-004950cus_FR_60845"
EURÌ:*
EURÌ:2
2026-11-04:
2026-12-04B(https://pay.example.fr/i/inv_2026_004950L
cus_FR_60845Lucie Fabrelucie.fabre@example.fr2en-IE:Europe/ParisRFR