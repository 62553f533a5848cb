namespace NativeEngine.Tests.Support;

/// <summary>Tests that read or change the library-wide counters (live contexts, tensors, bytes):
/// they run alone, after the parallel tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalStateCollection
{
    public const string Name = "Global native state";
}
