"""Every job's settings as typed objects, built once from its settings file (``base.Settings``): the stages' and
eval columns' (``stages``), and the other jobs' (``jobs``)."""
from tinyrs.settings.base import Settings, SettingsError
from tinyrs.settings.jobs import (DataListSettings, DemoWorldSettings, FetchSettings, ModelSettings,
                                  OversampleSettings, ReportSettings, RewardCheckSettings,
                                  TinyModelSettings)
from tinyrs.settings.stages import (ChatSettings, EvalSettings, GrpoSettings, JudgeSettings, RewardSettings,
                                    SftSettings, StageSettings)

__all__ = ["Settings", "SettingsError", "ChatSettings", "JudgeSettings", "RewardSettings", "StageSettings",
           "SftSettings", "GrpoSettings", "EvalSettings", "FetchSettings", "OversampleSettings", "DataListSettings",
           "TinyModelSettings", "ModelSettings", "DemoWorldSettings", "ReportSettings",
           "RewardCheckSettings"]
