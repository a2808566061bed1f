-- Segue: render selection. Renders the master mix of the time selection (or of the bounds in
-- Segue's job) to a WAV file, so Segue can continue the producer's music. The project's own
-- render settings are restored afterwards.
-- Job:    output_file (absolute .wav path), bounds (time_selection | custom), [start_seconds, end_seconds]
-- Result: output_file, start_seconds, end_seconds
local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local common = dofile(script_dir .. "Segue_common.lua")

local RENDER_WITH_MOST_RECENT_SETTINGS = 42230 -- "File: Render project, using the most recent render settings, auto-close render dialog"
local NUMBER_SETTINGS = { "RENDER_SETTINGS", "RENDER_BOUNDSFLAG", "RENDER_STARTPOS", "RENDER_ENDPOS",
  "RENDER_TAILFLAG", "RENDER_ADDTOPROJ" }
local TEXT_SETTINGS = { "RENDER_FILE", "RENDER_PATTERN", "RENDER_FORMAT" }

local function save_render_settings()
  local saved = { numbers = {}, texts = {} }
  for _, name in ipairs(NUMBER_SETTINGS) do saved.numbers[name] = reaper.GetSetProjectInfo(0, name, 0, false) end
  for _, name in ipairs(TEXT_SETTINGS) do
    local _, value = reaper.GetSetProjectInfo_String(0, name, "", false)
    saved.texts[name] = value
  end
  return saved
end

local function restore_render_settings(saved)
  for name, value in pairs(saved.numbers) do reaper.GetSetProjectInfo(0, name, value, true) end
  for name, value in pairs(saved.texts) do reaper.GetSetProjectInfo_String(0, name, value, true) end
end

local function render(job)
  local output_file = job.output_file or ""
  local directory, name = output_file:match("^(.*)[/\\]([^/\\]+)%.[wW][aA][vV]$")
  if not directory or name == "" then error("the render target must be an absolute .wav path", 0) end
  local start_seconds, end_seconds
  if job.bounds == "custom" then
    start_seconds, end_seconds = tonumber(job.start_seconds or ""), tonumber(job.end_seconds or "")
  else
    start_seconds, end_seconds = reaper.GetSet_LoopTimeRange2(0, false, false, 0, 0, false)
  end
  if not start_seconds or not end_seconds or end_seconds <= start_seconds then
    error("nothing to render: select a time range in REAPER first", 0)
  end

  local saved = save_render_settings()
  reaper.GetSetProjectInfo(0, "RENDER_SETTINGS", 0, true)   -- master mix
  reaper.GetSetProjectInfo(0, "RENDER_BOUNDSFLAG", 0, true) -- custom time bounds
  reaper.GetSetProjectInfo(0, "RENDER_STARTPOS", start_seconds, true)
  reaper.GetSetProjectInfo(0, "RENDER_ENDPOS", end_seconds, true)
  reaper.GetSetProjectInfo(0, "RENDER_TAILFLAG", 0, true)
  reaper.GetSetProjectInfo(0, "RENDER_ADDTOPROJ", 0, true)
  reaper.GetSetProjectInfo_String(0, "RENDER_FILE", directory, true)
  reaper.GetSetProjectInfo_String(0, "RENDER_PATTERN", name, true)
  reaper.GetSetProjectInfo_String(0, "RENDER_FORMAT", "evaw", true) -- WAV, default settings
  os.remove(output_file)
  reaper.Main_OnCommand(RENDER_WITH_MOST_RECENT_SETTINGS, 0)
  restore_render_settings(saved)

  if not reaper.file_exists(output_file) then error("REAPER did not write " .. output_file, 0) end
  return {
    output_file = output_file,
    start_seconds = start_seconds,
    end_seconds = end_seconds,
    info_time_seconds = start_seconds,
    message = "rendered " .. string.format("%.2f", end_seconds - start_seconds) .. " s",
  }
end

common.run("render", render)
