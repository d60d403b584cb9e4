
demo-019ğŒÅÕrelance-demoš
demo-fr-stop"	sms-reply