namespace NativeEngine.Checkpoints;

/// <summary>What <see cref="SafeTensorsFile.Open"/> does with the data checksum
/// (<c>__metadata__["sha256"]</c>, written by <see cref="SafeTensorsWriter"/>).</summary>
public enum SafeTensorsChecksum
{
    /// <summary>Verify it when the file has one (files of other tools usually have none). The default.</summary>
    VerifyIfPresent,

    /// <summary>Verify it; a file without one is refused.</summary>
    Required,

    /// <summary>Do not read the data to verify it (when another checksum already covers the file).</summary>
    Skip,
}
