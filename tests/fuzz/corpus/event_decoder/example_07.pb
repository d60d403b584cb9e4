
evt_0008ШСцЧ
billing-eub#
inv_2026_004655
EURћFШСцЧ