-- Segue: render selection. Renders the master mix of the time selection (or of the bounds in
-- Segue's job) to a WAV file, so Segue can continue the producer's music. Every render setting the
-- result depends on is pinned for the render and the producer's own settings are put back after,
-- so no undo point is left (common.run) and the next render of their own is as they left it.
-- Job:    output_file (absolute .wav path), bounds (time_selection | custom | beats),
--         [start_seconds, end_seconds] for custom, [start_beats, end_beats] (quarter notes) for beats
-- Result: output_file, start_seconds, end_seconds
local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or ""
local common = dofile(script_dir .. "Segue_common.lua")

local RENDER_WITH_MOST_RECENT_SETTINGS = 42230 -- "File: Render project, using the most recent render settings, auto-close render dialog"
-- What Segue renders with (GetSetProjectInfo keys, ReaScript docs): the master mix of custom time
-- bounds, no tail, not added to the project, stereo at the project's sample rate, no dither, no
-- normalisation, one WAV file and no second format.
local PINNED_NUMBERS = {
  RENDER_SETTINGS = 0,   -- master mix
  RENDER_BOUNDSFLAG = 0, -- custom time bounds (RENDER_STARTPOS..RENDER_ENDPOS)
  RENDER_TAILFLAG = 0,
  RENDER_ADDTOPROJ = 0,
  RENDER_SRATE = 0,      -- 0: the project's sample rate
  RENDER_CHANNELS = 2,
  RENDER_DITHER = 0,
  RENDER_NORMALIZE = 0,
}
local PINNED_TEXTS = {
  RENDER_FORMAT = "evaw", -- WAV, default settings
  RENDER_FORMAT2 = "",    -- no secondary format
}
local NUMBER_SETTINGS = { "RENDER_STARTPOS", "RENDER_ENDPOS" }
local TEXT_SETTINGS = { "RENDER_FILE", "RENDER_PATTERN" }
for name in pairs(PINNED_NUMBERS) do NUMBER_SETTINGS[#NUMBER_SETTINGS + 1] = name end
for name in pairs(PINNED_TEXTS) do TEXT_SETTINGS[#TEXT_SETTINGS + 1] = name end

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

-- The span to render in seconds. Beats go through REAPER's tempo map, as insertion does.
local function bounds(job)
  if job.bounds == "custom" then
    return tonumber(job.start_seconds or ""), tonumber(job.end_seconds or "")
  elseif job.bounds == "beats" then
    local start_beats, end_beats = tonumber(job.start_beats or ""), tonumber(job.end_beats or "")
    if not start_beats or not end_beats then return nil, nil end
    return reaper.TimeMap2_QNToTime(0, start_beats), reaper.TimeMap2_QNToTime(0, end_beats)
  end
  return reaper.GetSet_LoopTimeRange2(0, false, false, 0, 0, false)
end

local function render(job)
  local output_file = job.output_file or ""
  local directory, name = output_file:match("^(.*)[/\\]([^/\\]+)%.[wW][aA][vV]$")
  if not directory or name == "" then error("the render target must be an absolute .wav path", 0) end
  local start_seconds, end_seconds = bounds(job)
  if not start_seconds or not end_seconds or end_seconds <= start_seconds then
    error("nothing to render: select a time range in REAPER first", 0)
  end

  local saved = save_render_settings()
  for name, value in pairs(PINNED_NUMBERS) do reaper.GetSetProjectInfo(0, name, value, true) end
  for name, value in pairs(PINNED_TEXTS) do reaper.GetSetProjectInfo_String(0, name, value, true) end
  reaper.GetSetProjectInfo(0, "RENDER_STARTPOS", start_seconds, true)
  reaper.GetSetProjectInfo(0, "RENDER_ENDPOS", end_seconds, true)
  reaper.GetSetProjectInfo_String(0, "RENDER_FILE", directory, true)
  reaper.GetSetProjectInfo_String(0, "RENDER_PATTERN", name, true)
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
