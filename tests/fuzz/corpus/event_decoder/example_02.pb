
evt_0003€È¾Ö
billing-euRÚ
„
inv_2026_004655F-2026-004655cus_FR_30562"
EURžF*
EURžF2
2026-10-14:
2026-11-13B(https://pay.example.fr/i/inv_2026_004655Q
cus_FR_30562SiobhÃ¡n Byrnesiobhan.byrne@example.ie2en-IE:Europe/ParisRFR