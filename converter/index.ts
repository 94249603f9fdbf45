/** glm-dllama's converter library: what the CLI and the actions call. */
export { convert, planConversion, type ConvertOptions, type ConvertProgress, type ConvertResult } from './convert.js';
export { convertToGguf, ggufArchitecture, type GgufConvertOptions, type GgufConvertResult } from './gguf.js';
export { readGguf, readGgufTensorBytes, type GgufFile, type GgufTensorInfo, type GgufValue } from './gguf-format.js';
export { inspectModel, formatReport, type InspectReport } from './inspect.js';
export { readModelFile, readTensor, type ModelFile } from './model-file.js';
export { ArchType, RopeStyle, HEADER_KEYS, type ModelHeader } from './model-header.js';
export { modelTensors, type TensorSpec } from './model-layout.js';
export { WeightType, WEIGHT_TYPE_NAMES, weightTypeFromName, weightTypeName, type WeightTypeName } from './dtypes.js';
export { Checkpoint, type TensorInfo } from './safetensors.js';
export { CancelledError, InputError } from './errors.js';
export { ARCHITECTURES } from './architectures/index.js';
export { writeFixture, FIXTURE_ARCHS, type FixtureArch, type FixtureOptions, type FixtureResult } from './fixture.js';
