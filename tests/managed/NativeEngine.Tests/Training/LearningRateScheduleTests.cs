using NativeEngine.Training;

namespace NativeEngine.Tests.Training;

public sealed class LearningRateScheduleTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(100_000)]
    public void ConstantIsTheSameAtEveryStep(long step) => Assert.Equal(2.5e-4, new ConstantSchedule(2.5e-4).GetLearningRate(step));

    [Fact]
    public void WarmupCosineFollowsItsFormula()
    {
        const double peak = 1e-3, floor = 1e-5;
        const long warmup = 10, total = 110;
        var schedule = new WarmupCosineSchedule(peak, warmup, total, floor);
        for (long step = 1; step <= 130; step++)
        {
            double expected = step <= warmup ? peak * step / warmup
                : step >= total ? floor
                : floor + (peak - floor) * (1 + Math.Cos(Math.PI * (step - warmup) / (total - warmup))) / 2;
            Assert.Equal(expected, schedule.GetLearningRate(step), 1e-15);
        }
        Assert.Equal(peak / warmup, schedule.GetLearningRate(1), 1e-18);
        Assert.Equal(peak, schedule.GetLearningRate(warmup), 1e-18);
        Assert.Equal((peak + floor) / 2, schedule.GetLearningRate(60), 1e-15);   // halfway through the decay
        Assert.Equal(floor, schedule.GetLearningRate(total));
        Assert.Equal(floor, schedule.GetLearningRate(total + 1000));
    }

    [Fact]
    public void WarmupCosineWithoutWarmupStartsAtThePeakAndIsMonotone()
    {
        var schedule = new WarmupCosineSchedule(0.1, 0, 50);
        var previous = double.MaxValue;
        for (long step = 1; step <= 50; step++)
        {
            var rate = schedule.GetLearningRate(step);
            Assert.True(rate <= previous, $"step {step}: {rate} > {previous}");
            previous = rate;
        }
        Assert.Equal(0.1 * (1 + Math.Cos(Math.PI / 50)) / 2, schedule.GetLearningRate(1), 1e-15);
        Assert.Equal(0, schedule.GetLearningRate(50));
    }

    [Fact]
    public void InverseSquareRootFollowsAttentionIsAllYouNeed()
    {
        const int dModel = 512;
        const long warmup = 4000;
        const double scale = 2;
        var schedule = new InverseSquareRootSchedule(dModel, warmup, scale);
        foreach (long step in (long[])[1, 2, 100, 3999, 4000, 4001, 10_000, 1_000_000])
        {
            var expected = scale * Math.Pow(dModel, -0.5) * Math.Min(Math.Pow(step, -0.5), step * Math.Pow(warmup, -1.5));
            Assert.Equal(expected, schedule.GetLearningRate(step), expected * 1e-14);
        }
        // The peak, at the end of the warmup: scale / sqrt(d_model * warmup); linear before, 1/sqrt(step) after.
        Assert.Equal(scale / Math.Sqrt(dModel * (double)warmup), schedule.GetLearningRate(warmup), 1e-15);
        Assert.Equal(schedule.GetLearningRate(1000) * 2, schedule.GetLearningRate(2000), 1e-15);
        Assert.Equal(schedule.GetLearningRate(40_000) / 2, schedule.GetLearningRate(160_000), 1e-15);
    }

    [Fact]
    public void CreateBuildsTheScheduleTheOptionsName()
    {
        var options = new TrainerOptions { Steps = 100, LearningRate = 0.5, WarmupSteps = 10, MinLearningRate = 0.05 };
        var cosine = Assert.IsType<WarmupCosineSchedule>(LearningRateSchedule.Create(options));
        Assert.Equal((0.5, 10L, 100L, 0.05), (cosine.PeakLearningRate, cosine.WarmupSteps, cosine.TotalSteps, cosine.MinLearningRate));
        Assert.IsType<ConstantSchedule>(LearningRateSchedule.Create(options with { Schedule = LearningRateScheduleKind.Constant }));
        var noam = Assert.IsType<InverseSquareRootSchedule>(LearningRateSchedule.Create(
            options with { Schedule = LearningRateScheduleKind.InverseSquareRoot, ModelDimension = 64 }));
        Assert.Equal((64, 10L, 0.5), (noam.ModelDimension, noam.WarmupSteps, noam.Scale));
    }

    [Fact]
    public void InvalidArgumentsAreRefusedWithTheirName()
    {
        Assert.Throws<ArgumentOutOfRangeException>("step", () => new ConstantSchedule(1).GetLearningRate(0));
        Assert.Throws<ArgumentOutOfRangeException>("learningRate", () => new ConstantSchedule(double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>("warmupSteps", () => new WarmupCosineSchedule(1, 11, 10));
        Assert.Throws<ArgumentOutOfRangeException>("minLearningRate", () => new WarmupCosineSchedule(1, 0, 10, 2));
        Assert.Throws<ArgumentOutOfRangeException>("warmupSteps", () => new InverseSquareRootSchedule(64, 0));
        var error = Assert.Throws<ArgumentException>(() => LearningRateSchedule.Create(
            new TrainerOptions { Schedule = LearningRateScheduleKind.InverseSquareRoot, WarmupSteps = 10 }));
        Assert.Contains("ModelDimension", error.Message);
    }
}
