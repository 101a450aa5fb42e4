// Public entry point of the phi4mm package.
export { Phi4MM, DEFAULT_MODEL_ID, ValidationError, storagePolicy, type LoadOptions, type LoadProgress, type IsqKind } from './api/phi4mm.js';
export { Messages } from './api/messages.js';
export { EngineError, type EngineStats } from './engine/types.js';
export type { EngineOptions } from './engine/settings.js';
export type { ChatMessage, ContentPart, ImageInput, AudioInput, SamplingOptions, Usage, ChatResult, ChatEvent, FinishReason, Role } from './api/types.js';
export { ChatServer, type ServerOptions } from './server/server.js';
export { Phi4MMForCausalLM } from './models/phi4mm/model.js';
export { loadConfig, type Phi4MMConfig } from './models/phi4mm/config.js';
export { Phi4Tokenizer } from './text/tokenizer.js';
export { createBackend, type Backend } from './tensor/backend.js';
export { Tensor } from './tensor/tensor.js';
export { snapshotDownload } from './io/hub.js';
