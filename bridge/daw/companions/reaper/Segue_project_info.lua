-- Segue: project info. Tells Segue the tempo and time signature at the edit cursor (REAPER's
-- native OSC reports the tempo but not the time signature).
-- Job: nothing beyond the common fields. Result: tempo_bpm, signature_numerator, signature_denominator
-- It changes nothing, so it leaves no undo point (common.run). Segue also runs it as its liveness
-- check while REAPER is quiet: it touches only Segue's files, unlike "refresh all surfaces".
local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local common = dofile(script_dir .. "Segue_common.lua")

common.run("info", function(job)
  return { message = "project info" }
end)
