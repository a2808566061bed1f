-- Segue companion scripts for REAPER: the job/result file contract shared with Segue.
--
-- Segue writes a job file and triggers one of the Segue_*.lua actions over OSC; the action reads
-- the job, does the work and writes a result file that Segue waits for. The contract is specified
-- in Segue's bridge/daw/reaper_jobs.py; this file is its REAPER side. Both files are UTF-8 text,
-- one "key=value" per line. Loaded with dofile() by the action scripts; does nothing on its own.

local M = {}

-- Segue's data folder, as Python's platformdirs computes it for Segue (or SEGUE_DATA_DIR when set).
local function segue_data_dir()
  local override = os.getenv("SEGUE_DATA_DIR")
  if override and override ~= "" then return override end
  local os_name = reaper.GetOS()
  if os_name:match("^Win") then
    local local_app_data = os.getenv("LOCALAPPDATA") or ((os.getenv("USERPROFILE") or "") .. "\\AppData\\Local")
    return local_app_data .. "\\Segue"
  elseif os_name:match("^OSX") or os_name:match("^macOS") then
    return (os.getenv("HOME") or "") .. "/Library/Application Support/Segue"
  end
  local xdg_data_home = os.getenv("XDG_DATA_HOME")
  if xdg_data_home and xdg_data_home ~= "" then return xdg_data_home .. "/Segue" end
  return (os.getenv("HOME") or "") .. "/.local/share/Segue"
end

M.EXCHANGE_DIR = segue_data_dir() .. "/reaper"
M.JOB_FILE = M.EXCHANGE_DIR .. "/job.txt"
M.RESULT_FILE = M.EXCHANGE_DIR .. "/result.txt"

-- Read the job file into a table of strings; nil and a reason when there is no valid job.
function M.read_job()
  local handle = io.open(M.JOB_FILE, "r")
  if not handle then return nil, "no Segue job at " .. M.JOB_FILE end
  local job = {}
  for line in handle:lines() do
    line = line:gsub("\r$", "")
    local key, value = line:match("^([%a_]+)=(.*)$")
    if key then job[key] = value end
  end
  handle:close()
  if job.segue_job ~= "1" then return nil, "the job file is not a Segue job of format 1" end
  if not job.id or not job.id:match("^%x+$") then return nil, "the Segue job has no id" end
  return job
end

local function one_line(text)
  return (tostring(text or ""):gsub("[\r\n]+", " "))
end

local function format_value(value)
  if type(value) == "number" then return string.format("%.10g", value) end
  return one_line(value)
end

-- Write the result file through a temporary file, so Segue never reads half of it.
function M.write_result(job_id, status, message, values)
  local lines = {
    "segue_result=1",
    "id=" .. (job_id or ""),
    "status=" .. status,
    "message=" .. one_line(message),
  }
  for key, value in pairs(values or {}) do
    if key ~= "message" then lines[#lines + 1] = key .. "=" .. format_value(value) end
  end
  local temporary = M.RESULT_FILE .. ".part"
  local handle = io.open(temporary, "w")
  if not handle then
    reaper.ShowConsoleMsg("Segue: cannot write " .. temporary .. "\n")
    return
  end
  handle:write(table.concat(lines, "\n"), "\n")
  handle:close()
  os.remove(M.RESULT_FILE) -- os.rename does not replace an existing file on Windows
  os.rename(temporary, M.RESULT_FILE)
end

-- Tempo and time signature at a position (seconds), so Segue learns what native OSC cannot tell it.
function M.project_info(time_seconds)
  local numerator, denominator, tempo = reaper.TimeMap_GetTimeSigAtTime(0, time_seconds)
  return { tempo_bpm = tempo, signature_numerator = numerator, signature_denominator = denominator }
end

-- REAPER adds an undo point ("ReaScript: Run") after every script that does not say otherwise;
-- calling defer() says otherwise (REAPER's ReaScript documentation, "Undo": "To prevent the
-- automatic addition of an undo point, a script can call defer()"). A script that changes the
-- project makes its own, named point with Undo_BeginBlock/Undo_EndBlock; one that changes
-- nothing makes none. Either way the automatic point must not be added.
function M.no_automatic_undo_point()
  reaper.defer(function() end)
end

-- Run one action: take the job, check it is for this action and still fresh, do `work(job)`,
-- and answer. `work` returns a table of result values (with an optional `message` and
-- `info_time_seconds`, the position for project_info) or raises error("reason", 0).
function M.run(action, work)
  M.no_automatic_undo_point()
  local job, problem = M.read_job()
  if not job then
    M.write_result("", "error", problem)
    return
  end
  os.remove(M.JOB_FILE) -- taken: a second trigger must not repeat the work
  if job.action ~= action then
    M.write_result(job.id, "error", "this job is for the Segue " .. tostring(job.action) ..
      " script, not the " .. action .. " script: check the command ids in Segue's settings")
    return
  end
  local expires = tonumber(job.expires_unix or "")
  if expires and os.time() > expires then
    M.write_result(job.id, "error", "the job expired before REAPER ran it")
    return
  end
  local ok, values = pcall(work, job)
  if not ok then
    local info = M.project_info(reaper.GetCursorPosition())
    M.write_result(job.id, "error", values, info)
    return
  end
  for key, value in pairs(M.project_info(values.info_time_seconds or reaper.GetCursorPosition())) do
    values[key] = value
  end
  values.info_time_seconds = nil
  M.write_result(job.id, "ok", values.message or "done", values)
end

return M
