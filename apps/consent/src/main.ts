import { runService } from '@ledgerly/chassis';
import { consent } from './service.js';

runService(consent);
