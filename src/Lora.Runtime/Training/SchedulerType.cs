namespace Lora.Training;

/// <summary>Learning-rate schedules (transformers' <c>lr_scheduler_type</c>); formulas in <see cref="LearningRateSchedule"/>.</summary>
public enum SchedulerType
{
    /// <summary><c>"constant"</c>: the base rate throughout; warmup is ignored, as <c>get_constant_schedule</c> does.</summary>
    Constant,

    /// <summary><c>"constant_with_warmup"</c>: linear warmup from 0, then the base rate.</summary>
    ConstantWithWarmup,

    /// <summary><c>"linear"</c> (transformers' default): linear warmup from 0, then linear decay to 0 at the last step.</summary>
    Linear,

    /// <summary><c>"cosine"</c>: linear warmup from 0, then half a cosine down to 0 at the last step.</summary>
    Cosine,
}
