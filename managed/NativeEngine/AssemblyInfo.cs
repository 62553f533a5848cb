// The generated LibraryImport declarations pass only blittable types and pointers, so the
// runtime's built-in marshalling is switched off for the whole assembly.
[assembly: System.Runtime.CompilerServices.DisableRuntimeMarshalling]
