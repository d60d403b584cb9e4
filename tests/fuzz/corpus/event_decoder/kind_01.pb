
evt_cancel_1­üÖ
billing-euŠ
inv_2026_004812