
-call-outcome:task-1:promise_to_pay:2026-11-30 ‡×relance-call-outcome²1
task-1
2026-11-30"pays on the 30th*agent-7