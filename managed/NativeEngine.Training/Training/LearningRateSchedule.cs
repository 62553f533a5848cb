using System.Globalization;

namespace NativeEngine.Training;

/// <summary>The learning-rate schedules a <see cref="TrainerOptions"/> can name.</summary>
public enum LearningRateScheduleKind
{
    /// <summary><see cref="ConstantSchedule"/>: <see cref="TrainerOptions.LearningRate"/> at every step.</summary>
    Constant,

    /// <summary><see cref="WarmupCosineSchedule"/>: linear warmup to <see cref="TrainerOptions.LearningRate"/>, then
    /// cosine decay to <see cref="TrainerOptions.MinLearningRate"/> at the last step.</summary>
    WarmupCosine,

    /// <summary><see cref="InverseSquareRootSchedule"/>: the schedule of "Attention Is All You Need", scaled by
    /// <see cref="TrainerOptions.LearningRate"/>, for <see cref="TrainerOptions.ModelDimension"/>.</summary>
    InverseSquareRoot,
}

/// <summary>
/// The learning rate of each optimizer step. Steps are 1-based: step 1 is the first update.
/// </summary>
/// <remarks>A schedule is a pure function of the step, so a resumed run gets the same rates. Immutable and
/// thread-safe.</remarks>
public abstract class LearningRateSchedule
{
    /// <summary>The learning rate of optimizer step <paramref name="step"/>.</summary>
    /// <param name="step">The 1-based step, &gt;= 1.</param>
    /// <returns>The learning rate, finite and &gt;= 0.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="step"/> is below 1.</exception>
    public double GetLearningRate(long step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        return Compute(step);
    }

    /// <summary>Builds the schedule that <paramref name="options"/> names
    /// (<see cref="TrainerOptions.Schedule"/>), over <see cref="TrainerOptions.Steps"/> steps.</summary>
    /// <param name="options">The options (validated by this call).</param>
    /// <returns>The schedule.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">An option is out of range (the message names it).</exception>
    public static LearningRateSchedule Create(TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options.Schedule switch
        {
            LearningRateScheduleKind.Constant => new ConstantSchedule(options.LearningRate),
            LearningRateScheduleKind.WarmupCosine =>
                new WarmupCosineSchedule(options.LearningRate, options.WarmupSteps, options.Steps, options.MinLearningRate),
            _ => new InverseSquareRootSchedule(options.ModelDimension, options.WarmupSteps, options.LearningRate),
        };
    }

    /// <summary>The learning rate of a validated step (&gt;= 1).</summary>
    /// <param name="step">The 1-based step.</param>
    /// <returns>The learning rate.</returns>
    protected abstract double Compute(long step);

    /// <summary>Throws unless <paramref name="value"/> is finite and &gt;= 0.</summary>
    private protected static void CheckRate(double value, string name)
    {
        if (!double.IsFinite(value) || value < 0)
        {
            throw new ArgumentOutOfRangeException(name, value,
                string.Create(CultureInfo.InvariantCulture, $"{name} is {value}; it must be finite and >= 0."));
        }
    }
}

/// <summary>The same learning rate at every step.</summary>
public sealed class ConstantSchedule : LearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="learningRate">The rate, finite and &gt;= 0.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="learningRate"/> is negative or not finite.</exception>
    public ConstantSchedule(double learningRate)
    {
        CheckRate(learningRate, nameof(learningRate));
        LearningRate = learningRate;
    }

    /// <summary>The rate.</summary>
    public double LearningRate { get; }

    /// <inheritdoc />
    protected override double Compute(long step) => LearningRate;
}

/// <summary>
/// Linear warmup, then cosine decay to a floor: <c>peak * step / warmup</c> for <c>step &lt;= warmup</c>; then
/// <c>floor + (peak - floor) * (1 + cos(pi * p)) / 2</c> with <c>p = (step - warmup) / (total - warmup)</c>, so
/// the rate is <c>peak</c> at the end of the warmup and <c>floor</c> at step <c>total</c> (and after it).
/// </summary>
public sealed class WarmupCosineSchedule : LearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="peakLearningRate">The rate at the end of the warmup, finite and &gt;= 0.</param>
    /// <param name="warmupSteps">The steps of the linear warmup, 0 to <paramref name="totalSteps"/>.</param>
    /// <param name="totalSteps">The step at which the decay reaches the floor, &gt;= 1.</param>
    /// <param name="minLearningRate">The floor, 0 to <paramref name="peakLearningRate"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public WarmupCosineSchedule(double peakLearningRate, long warmupSteps, long totalSteps, double minLearningRate = 0)
    {
        CheckRate(peakLearningRate, nameof(peakLearningRate));
        CheckRate(minLearningRate, nameof(minLearningRate));
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(warmupSteps, totalSteps);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minLearningRate, peakLearningRate);
        PeakLearningRate = peakLearningRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
        MinLearningRate = minLearningRate;
    }

    /// <summary>The rate at the end of the warmup.</summary>
    public double PeakLearningRate { get; }

    /// <summary>The steps of the linear warmup.</summary>
    public long WarmupSteps { get; }

    /// <summary>The step at which the rate reaches <see cref="MinLearningRate"/>.</summary>
    public long TotalSteps { get; }

    /// <summary>The floor.</summary>
    public double MinLearningRate { get; }

    /// <inheritdoc />
    protected override double Compute(long step)
    {
        if (step <= WarmupSteps)
        {
            return PeakLearningRate * step / WarmupSteps;
        }
        if (step >= TotalSteps)
        {
            return MinLearningRate;
        }
        var progress = (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps);
        return MinLearningRate + (PeakLearningRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}

/// <summary>
/// The schedule of "Attention Is All You Need" (Vaswani et al., 2017, section 5.3), scaled:
/// <c>scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)</c>. It rises linearly for <c>warmup</c> steps,
/// peaks at <c>scale * (d_model * warmup)^-0.5</c>, then decays as the inverse square root of the step.
/// </summary>
public sealed class InverseSquareRootSchedule : LearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="modelDimension">d_model, &gt;= 1.</param>
    /// <param name="warmupSteps">The warmup steps, &gt;= 1 (the paper uses 4000).</param>
    /// <param name="scale">Multiplies the formula (1 in the paper); finite and &gt;= 0.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public InverseSquareRootSchedule(int modelDimension, long warmupSteps, double scale = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(modelDimension, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(warmupSteps, 1);
        CheckRate(scale, nameof(scale));
        ModelDimension = modelDimension;
        WarmupSteps = warmupSteps;
        Scale = scale;
    }

    /// <summary>d_model.</summary>
    public int ModelDimension { get; }

    /// <summary>The warmup steps.</summary>
    public long WarmupSteps { get; }

    /// <summary>The factor in front of the formula.</summary>
    public double Scale { get; }

    /// <inheritdoc />
    protected override double Compute(long step) =>
        Scale / Math.Sqrt(ModelDimension) * Math.Min(1 / Math.Sqrt(step), step * Math.Pow(WarmupSteps, -1.5));
}
