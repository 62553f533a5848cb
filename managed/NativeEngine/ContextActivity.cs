namespace NativeEngine;

/// <summary>What a context has done that costs the host time (<see cref="Context.GetActivity"/>): on a device
/// backend, how often the host waited for the device's queued work. A training step that makes no host round trip
/// leaves <see cref="HostWaits"/> unchanged.</summary>
/// <param name="HostWaits">Times the host has waited for the context's queued work: synchronizations, reads, copies
/// to host memory, and rare waits for staging memory. Always 0 on the CPU backend.</param>
/// <param name="PendingChecks">Checks of device data (ids within their table, finite inputs, ...) queued but not yet
/// reported; the next wait reports the first failure as a <see cref="NativeEngineException"/>.</param>
public readonly record struct ContextActivity(long HostWaits, long PendingChecks);
