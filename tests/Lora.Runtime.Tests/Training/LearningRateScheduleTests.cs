using Lora.Training;

namespace Lora.Runtime.Tests.Training;

/// <summary>transformers' schedule formulas, against values computed by hand (s = scheduler steps taken so far).</summary>
public class LearningRateScheduleTests
{
    [Theory]
    [InlineData(0, 1.0)]
    [InlineData(2, 1.0)]
    [InlineData(9, 1.0)]
    public void Constant_ignores_warmup(int step, double factor) =>
        Assert.Equal(factor, new LearningRateSchedule(SchedulerType.Constant, 1e-3, warmupSteps: 3, totalSteps: 10).Factor(step), 12);

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(1, 0.25)]
    [InlineData(2, 0.5)]
    [InlineData(4, 1.0)]
    [InlineData(9, 1.0)]
    public void Constant_with_warmup(int step, double factor) =>
        Assert.Equal(factor, new LearningRateSchedule(SchedulerType.ConstantWithWarmup, 1e-3, 4, 10).Factor(step), 12);

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(1, 0.5)]
    [InlineData(2, 1.0)]
    [InlineData(6, 0.5)]    // (10 - 6) / (10 - 2)
    [InlineData(9, 0.125)]  // (10 - 9) / 8
    [InlineData(10, 0.0)]
    [InlineData(12, 0.0)]   // never negative
    public void Linear(int step, double factor) =>
        Assert.Equal(factor, new LearningRateSchedule(SchedulerType.Linear, 1e-3, 2, 10).Factor(step), 12);

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(1, 0.5)]
    [InlineData(2, 1.0)]
    [InlineData(4, 0.85355339059327373)] // progress 0.25: ½(1 + cos(π/4))
    [InlineData(6, 0.5)]                 // progress 0.5:  ½(1 + cos(π/2))
    [InlineData(8, 0.14644660940672627)] // progress 0.75: ½(1 + cos(3π/4))
    [InlineData(10, 0.0)]
    public void Cosine(int step, double factor) =>
        Assert.Equal(factor, new LearningRateSchedule(SchedulerType.Cosine, 1e-3, 2, 10).Factor(step), 12);

    [Fact]
    public void No_warmup_starts_at_the_base_rate()
    {
        Assert.Equal(2e-4, new LearningRateSchedule(SchedulerType.Linear, 2e-4, 0, 4).LearningRateAt(0), 15);
        Assert.Equal(1e-4, new LearningRateSchedule(SchedulerType.Linear, 2e-4, 0, 4).LearningRateAt(2), 15);
        Assert.Equal(1e-4, new LearningRateSchedule(SchedulerType.Cosine, 2e-4, 0, 4).LearningRateAt(2), 15);
    }

    [Theory]
    [InlineData(0.15, 10, 2)] // ceil(1.5)
    [InlineData(0.1, 7, 1)]   // ceil(0.7)
    [InlineData(0.1, 100, 10)]
    [InlineData(0.0, 50, 0)]
    public void Warmup_ratio_is_ceil_of_total_times_ratio(double ratio, int total, int warmup) =>
        Assert.Equal(warmup, LearningRateSchedule.WarmupFromRatio(ratio, total));

    [Theory]
    [InlineData("constant", SchedulerType.Constant)]
    [InlineData("constant_with_warmup", SchedulerType.ConstantWithWarmup)]
    [InlineData("linear", SchedulerType.Linear)]
    [InlineData("Cosine", SchedulerType.Cosine)]
    public void Parses_transformers_names(string name, SchedulerType type)
    {
        Assert.Equal(type, LearningRateSchedule.ParseType(name));
        Assert.Equal(name.ToLowerInvariant(), LearningRateSchedule.Name(type));
    }

    [Fact]
    public void Unknown_name_is_a_user_error() =>
        Assert.Contains("polynomial", Assert.Throws<LoraException>(() => LearningRateSchedule.ParseType("polynomial")).Message);
}
