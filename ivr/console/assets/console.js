// The console's only script: start the NHS.UK frontend components (header menu, error summary focus...).
import { initAll } from "./nhsuk-frontend.min.js";

initAll();
