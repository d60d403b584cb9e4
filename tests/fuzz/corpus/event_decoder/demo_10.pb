
demo-016偖付relance-demoj\
plan-d6inv-d6

2026-10-05	
EUR生

2026-11-05	
EUR生

2026-12-05	
EUR生