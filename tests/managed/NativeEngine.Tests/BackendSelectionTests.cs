namespace NativeEngine.Tests;

/// <summary>Backend selection: the text form and NE_BACKEND's precedence as pure functions (no
/// CUDA needed), and what Auto and Cuda give on this machine.</summary>
public sealed class BackendSelectionTests
{
    [Theory]
    [InlineData("cpu", Backend.Cpu, 0)]
    [InlineData("CPU", Backend.Cpu, 0)]
    [InlineData(" auto ", Backend.Auto, 0)]
    [InlineData("cuda", Backend.Cuda, 0)]
    [InlineData("cuda:0", Backend.Cuda, 0)]
    [InlineData("Cuda:3", Backend.Cuda, 3)]
    public void AcceptedValuesParse(string text, Backend backend, int deviceIndex)
    {
        Assert.True(BackendSetting.TryParse(text, out var parsedBackend, out var parsedIndex));
        Assert.Equal(backend, parsedBackend);
        Assert.Equal(deviceIndex, parsedIndex);
    }

    [Theory]
    [InlineData("")]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:+1")]
    [InlineData("cuda:1.5")]
    [InlineData("cuda: 1")]
    [InlineData("cuda:99999999999")]
    [InlineData("cpu:0")]
    [InlineData("auto:0")]
    public void OtherValuesDoNotParse(string text) => Assert.False(BackendSetting.TryParse(text, out _, out _));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public void AnUnsetOrBlankVariableLeavesTheOptionsAsGiven(string? setting)
    {
        var options = new ContextOptions { Backend = Backend.Cuda, DeviceIndex = 2, NumThreads = 3 };

        Assert.Same(options, BackendSetting.Apply(options, setting));
    }

    [Fact]
    public void TheVariableReplacesBackendAndDeviceIndexAndKeepsTheOtherOptions()
    {
        var options = new ContextOptions { Backend = Backend.Cpu, NumThreads = 3, SimdLevel = SimdLevel.Scalar };

        var cuda = BackendSetting.Apply(options, "cuda:2");
        var cpu = BackendSetting.Apply(options with { Backend = Backend.Cuda, DeviceIndex = 1 }, "cpu");

        Assert.Equal(options with { Backend = Backend.Cuda, DeviceIndex = 2 }, cuda);
        Assert.Equal(options, cpu);
        Assert.Equal(Backend.Auto, BackendSetting.Apply(options, "auto").Backend);
    }

    [Fact]
    public void AnInvalidVariableNamesItselfItsValueAndTheAcceptedValues()
    {
        var e = Assert.Throws<InvalidOperationException>(() => BackendSetting.Apply(new ContextOptions(), "cuda:x"));

        Assert.StartsWith("NE_BACKEND is 'cuda:x'; expected cpu, cuda, cuda:N", e.Message, StringComparison.Ordinal);
        Assert.Contains("auto", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EachBackendMapsToItsLibraryPreference()
    {
        Assert.Equal(NativeLibraryLoader.LibraryPreference.CpuFirst, NativeLibraryLoader.PreferenceFor(Backend.Cpu));
        Assert.Equal(NativeLibraryLoader.LibraryPreference.CudaFirst, NativeLibraryLoader.PreferenceFor(Backend.Auto));
        Assert.Equal(NativeLibraryLoader.LibraryPreference.CudaOnly, NativeLibraryLoader.PreferenceFor(Backend.Cuda));
    }

    [Fact]
    public void AutoGivesACpuContextWithTheCpuOptionsWhereNoDeviceIsPresent()
    {
        SkipWhereADeviceOrTheOverrideDecides();

        using var context = Context.Create(new ContextOptions { Backend = Backend.Auto, NumThreads = 1, SimdLevel = SimdLevel.Scalar });

        Assert.Equal(Backend.Cpu, context.Backend);
        Assert.Equal(0, context.DeviceIndex);
        Assert.Equal(1, context.NumThreads);
        Assert.Equal(SimdLevel.Scalar, context.SimdLevel);
    }

    [Fact]
    public void AutoRefusesAnotherDeviceThanZeroOnEveryMachine()
    {
        SkipWhereTheOverrideDecides();

        var e = Assert.Throws<NativeEngineException>(() => Context.Create(new ContextOptions { Backend = Backend.Auto, DeviceIndex = 1 }));

        Assert.Equal(Status.InvalidArgument, e.Status);
        Assert.Contains("NE_BACKEND_AUTO", e.NativeMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void CudaWithoutADeviceIsBackendUnavailableNamingWhatIsMissing()
    {
        SkipWhereADeviceOrTheOverrideDecides();

        var e = Assert.Throws<NativeEngineException>(() => Context.Create(new ContextOptions { Backend = Backend.Cuda }));

        Assert.Equal(Status.BackendUnavailable, e.Status);
        var loaded = NativeLibraryLoader.Loaded!;
        if (loaded.HasCuda)
        {
            Assert.Contains("no CUDA device", e.NativeMessage, StringComparison.Ordinal);
        }
        else
        {
            Assert.StartsWith("ne_context_create: the CUDA backend is not compiled into this library", e.NativeMessage, StringComparison.Ordinal);
            Assert.Contains($"This process loaded {loaded.Path}", e.NativeMessage, StringComparison.Ordinal);
            Assert.Contains("NE_BACKEND=cuda", e.NativeMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void SystemInfoSaysWhichLibraryWasLoadedAndWhy()
    {
        var system = Engine.GetSystemInfo();

        Assert.Equal(Engine.LibraryPath, system.LibraryPath);
        Assert.StartsWith("for ", system.LibrarySelection, StringComparison.Ordinal);
        Assert.Contains($"loaded {system.LibraryPath} (", system.LibrarySelection, StringComparison.Ordinal);
        Assert.Contains(system.CudaCompiled ? "CPU and CUDA backends" : "CPU backend only", system.LibrarySelection, StringComparison.Ordinal);
    }

    private static void SkipWhereTheOverrideDecides()
    {
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(BackendSetting.EnvironmentVariable)))
        {
            Assert.Skip("NE_BACKEND is set and overrides the backend under test.");
        }
    }

    private static void SkipWhereADeviceOrTheOverrideDecides()
    {
        SkipWhereTheOverrideDecides();
        var system = Engine.GetSystemInfo();
        if (system.CudaCompiled && system.CudaDeviceCount > 0)
        {
            Assert.Skip("A CUDA device is present.");
        }
    }
}
