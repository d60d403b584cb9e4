
dlr:SM0123:delivered ì×relance-twilio¢
rem-1twilio"SM0123(