from models.decoders import GaussianDecoder
from models.sylvester import FlowParams, FlowSample, HouseholderSylvesterEncoder
from models.toy import Discriminator, toy_decoder, toy_encoder
